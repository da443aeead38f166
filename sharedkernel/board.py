"""The living event-storming board: the wall of stickies laid out from :func:`sharedkernel.catalog.registry`.

One swimlane per context, left to right in ``settings.BOARD_LANE_ORDER`` (the order the main flows
run), any other context after. Inside a lane, top to bottom:

1. each aggregate (yellow) with its commands (blue, left column) and the events they record
   (orange, right column), an arrow from each command to each event it declares;
2. events no command records (a handler appends them: e-mails, webhooks);
3. policies (purple), with an arrow from each event they react to — dashed when the event comes
   from another context — and an arrow to each command they issue;
4. read models (green, the ``replay_safe`` projections) with the events that feed them;
5. outside systems (lilac).

A handler with open or failed deliveries is a pink hot spot. Positions are computed here, in
pixels, so the arrows can be drawn server-side as SVG paths; the template only places them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from sharedkernel.catalog import Registry, registry
from sharedkernel.models import DeliveryStatus, EventDelivery, StoredEvent

LANE_W, LANE_GAP, TOP = 294, 22, 44
LEFT_X, LEFT_W = 14, 126
RIGHT_X, RIGHT_W = 156, 130
STICKY_H, ROW = 40, 46
AGGREGATE_H, LABEL_H = 24, 26


@dataclass
class Sticky:
    kind: str  # event | command | aggregate | policy | readmodel | external | label
    key: str
    label: str
    context: str
    x: int = 0
    y: int = 0
    w: int = LEFT_W
    h: int = STICKY_H
    hot: bool = False
    info: dict = field(default_factory=dict)

    @property
    def dom_id(self) -> str:
        return f"{self.kind}-{self.key}".replace(".", "-").replace(":", "-")


@dataclass(frozen=True)
class Arrow:
    source: str  # dom ids
    target: str
    d: str  # the SVG path
    kind: str  # records | reacts | issues
    dashed: bool


def _short(name: str) -> str:
    return name.split(".", 1)[-1]


def live_figures() -> tuple[dict[str, int], dict[tuple[str, str], dict[str, int]]]:
    """Events per type in the last 24 h, and open deliveries per (handler, event type): pending, failed."""
    since = timezone.now() - timedelta(hours=24)
    counts = dict(
        StoredEvent.objects.filter(recorded_at__gte=since)
        .values_list("event_type")
        .annotate(n=Count("position"))
        .values_list("event_type", "n")
    )
    rows = (
        EventDelivery.objects.exclude(status=DeliveryStatus.DONE)
        .values_list("handler", "event__event_type", "status")
        .annotate(n=Count("id"))
        .values_list("handler", "event__event_type", "status", "n")
    )
    open_: dict[tuple[str, str], dict[str, int]] = {}
    for handler, event_type, status, n in rows:
        slot = open_.setdefault((handler, event_type), {"pending": 0, "failed": 0})
        slot["failed" if status == DeliveryStatus.FAILED else "pending"] += n
    return counts, open_


def _lanes(reg: Registry) -> list[str]:
    found = dict.fromkeys(
        [e.context for e in reg.events]
        + [c.context for c in reg.commands]
        + [h.context for h in reg.handlers]
        + [x.context for x in reg.external_systems]
    )
    order = [c for c in getattr(settings, "BOARD_LANE_ORDER", []) if c in found]
    return [*order, *(c for c in found if c not in order)]


def _location_line(location: str) -> int:
    try:
        return int(location.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


def _path(a: Sticky, b: Sticky) -> str:
    """A curve from ``a`` to ``b``: between facing sides, or out to the left when both sit in one column."""
    if a.x == b.x:  # one column (policy → command): bow out into the gap left of the lane's column
        x, y1, y2 = a.x, a.y + a.h // 2, b.y + b.h // 2
        bow = min(LEFT_X + 6, 10 + abs(y2 - y1) // 12)
        return f"M{x},{y1} C{x - bow},{y1} {x - bow},{y2} {x},{y2}"
    if a.x + a.w <= b.x:
        x1, x2 = a.x + a.w, b.x
    elif b.x + b.w <= a.x:
        x1, x2 = a.x, b.x + b.w
    else:
        x1, x2 = a.x + a.w // 2, b.x + b.w // 2
    y1, y2 = a.y + a.h // 2, b.y + b.h // 2
    mid = (x1 + x2) // 2
    return f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"


def build(reg: Registry | None = None) -> dict:
    reg = reg or registry()
    counts, open_ = live_figures()
    events = {e.event_type: e for e in reg.events}
    stickies: list[Sticky] = []
    by_key: dict[tuple[str, str], Sticky] = {}
    arrows: list[Arrow] = []
    issued_by: dict[str, list[str]] = {}
    for h in reg.handlers:
        for c in h.issues:
            issued_by.setdefault(c, []).append(h.name)

    def add(s: Sticky) -> Sticky:
        stickies.append(s)
        by_key[(s.kind, s.key)] = s
        return s

    def handler_figures(name: str, types: tuple[str, ...]) -> dict:
        per_type = {t: open_.get((name, t), {"pending": 0, "failed": 0}) for t in types}
        return {
            "pending": sum(v["pending"] for v in per_type.values()),
            "failed": sum(v["failed"] for v in per_type.values()),
            "by_type": {t: v for t, v in per_type.items() if v["pending"] or v["failed"]},
        }

    def handler_sticky(h, left: int, y: int, *, wide: bool = False) -> Sticky:
        figures = handler_figures(h.name, h.events)
        return add(
            Sticky(
                "readmodel" if h.read_model else "policy",
                h.name,
                _short(h.name),
                h.context,
                x=left + LEFT_X,
                y=y,
                w=RIGHT_X + RIGHT_W - LEFT_X if wide else LEFT_W,
                hot=bool(figures["pending"] or figures["failed"]),
                info={"handler": h, **figures},
            )
        )

    lanes = _lanes(reg)
    heights = []
    for index, context in enumerate(lanes):
        left = index * (LANE_W + LANE_GAP)
        y = TOP

        def label(text: str, context=context, left=left) -> None:
            nonlocal y
            add(Sticky("label", f"{context}-{text}", text, context, x=left + LEFT_X, y=y, w=LANE_W - LEFT_X, h=20))
            y += LABEL_H

        placed: set[str] = set()
        commands = sorted((c for c in reg.commands if c.context == context), key=lambda c: _location_line(c.location))
        for aggregate in dict.fromkeys(c.aggregate or "—" for c in commands):
            add(
                Sticky(
                    "aggregate",
                    f"{context}.{aggregate}",
                    aggregate,
                    context,
                    x=left + LEFT_X,
                    y=y,
                    w=RIGHT_X + RIGHT_W - LEFT_X,
                    h=AGGREGATE_H,
                    info={"commands": [c.name for c in commands if (c.aggregate or "—") == aggregate]},
                )
            )
            y += AGGREGATE_H + 8
            for c in (c for c in commands if (c.aggregate or "—") == aggregate):
                for h in reg.handlers:  # a policy sits just before the (first) command it issues
                    if c.name in h.issues and not h.read_model and ("policy", h.name) not in by_key:
                        handler_sticky(h, left, y)
                        y += ROW
                cmd = add(
                    Sticky(
                        "command",
                        c.name,
                        _short(c.name),
                        context,
                        x=left + LEFT_X,
                        y=y,
                        info={"spec": c, "issued_by": issued_by.get(c.name, [])},
                    )
                )
                fresh = [t for t in c.records or () if t in events and t not in placed and events[t].context == context]
                for row, event_type in enumerate(fresh):
                    placed.add(event_type)
                    add(Sticky("event", event_type, _short(event_type), context, x=left + RIGHT_X, y=y + row * ROW))
                    by_key[("event", event_type)].w = RIGHT_W
                y += max(1, len(fresh)) * ROW
                for t in c.records or ():
                    if ("event", t) in by_key:
                        target = by_key[("event", t)]
                        arrows.append(Arrow(cmd.dom_id, target.dom_id, _path(cmd, target), "records", False))
        rest = [e for e in reg.events if e.context == context and e.event_type not in placed]
        if rest:
            label("Recorded by handlers" if commands else "Events")
            for e in rest:
                add(Sticky("event", e.event_type, _short(e.event_type), context, x=left + RIGHT_X, y=y, w=RIGHT_W))
                y += ROW
        for read_models, title in ((False, "Policies"), (True, "Read models")):
            mine = [h for h in reg.handlers if h.context == context and h.read_model == read_models]
            mine = [h for h in mine if ("policy", h.name) not in by_key]
            if not mine:
                continue
            label(title)
            for h in mine:
                handler_sticky(h, left, y, wide=read_models)
                y += ROW
        mine = [x for x in reg.external_systems if x.context == context]
        if mine:
            label("External systems")
            for x in mine:
                add(Sticky("external", x.name, x.name, context, x=left + LEFT_X, y=y, info={"system": x}))
                y += ROW
        heights.append(y)

    for e in reg.events:  # the figures of each event, once every handler is known
        sticky = by_key.get(("event", e.event_type))
        if sticky is None:
            continue
        per = {s: open_.get((s, e.event_type), {"pending": 0, "failed": 0}) for s in e.subscribers}
        sticky.hot = any(v["pending"] or v["failed"] for v in per.values())
        sticky.info = {"entry": e, "last_24h": counts.get(e.event_type, 0), "deliveries": per}

    for h in reg.handlers:  # event → policy (dashed across contexts) → command
        if h.read_model or any("*" in p for p in h.patterns):
            continue  # read models list their feeds; a handler of every event would cross the whole wall
        policy = by_key[("readmodel" if h.read_model else "policy", h.name)]
        for t in h.events:
            if ("event", t) in by_key:
                source = by_key[("event", t)]
                dashed = source.context != h.context
                arrows.append(Arrow(source.dom_id, policy.dom_id, _path(source, policy), "reacts", dashed))
        for c in h.issues:
            if ("command", c) in by_key:
                target = by_key[("command", c)]
                arrows.append(Arrow(policy.dom_id, target.dom_id, _path(policy, target), "issues", False))

    width = len(lanes) * (LANE_W + LANE_GAP) - LANE_GAP
    height = max(heights, default=TOP) + 20
    return {
        "lanes": [{"context": c, "x": i * (LANE_W + LANE_GAP), "w": LANE_W, "h": height} for i, c in enumerate(lanes)],
        "stickies": stickies,
        "arrows": arrows,
        "width": width,
        "height": height,
    }
