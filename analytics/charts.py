"""Server-rendered SVG charts (pygal): pictures in the page, numbers in the tables beside them."""

from __future__ import annotations

import pygal
from pygal.style import Style

STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#1d2433",
    foreground_strong="#1d2433",
    foreground_subtle="#e2e6ee",
    colors=("#3b5bdb", "#2b8a3e", "#e67700", "#c92a2a", "#7048e8", "#0c8599"),
    font_family="system-ui, sans-serif",
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=12,
)


def _chart(
    kind, title: str, labels: list[str], series: dict[str, list], *, width: int = 900, height: int = 320, **options
) -> str:
    chart = kind(
        style=STYLE,
        height=height,
        width=width,
        show_legend=len(series) > 1,
        legend_at_bottom=True,
        x_label_rotation=30 if len(labels) > 8 else 0,
        show_minor_x_labels=False,
        title=title,
        print_values=False,
        js=[],  # pygal's default tooltip script lives on a public host: no third-party script in staff pages
        **options,
    )
    chart.x_labels = labels
    chart.x_labels_major = labels[:: max(1, len(labels) // 10)]
    for name, values in series.items():
        chart.add(name, values)
    return chart.render(is_unicode=True)


def line(title, labels, series, **options) -> str:
    return _chart(pygal.Line, title, labels, series, dots_size=2, **options)


def bars(title, labels, series, **options) -> str:
    return _chart(pygal.Bar, title, labels, series, **options)


def stacked(title, labels, series, **options) -> str:
    return _chart(pygal.StackedBar, title, labels, series, **options)
