"""Events published by the Analytics context (it records what staff took out of it)."""

from __future__ import annotations

from dataclasses import dataclass

from sharedkernel.events import Event


@dataclass(frozen=True)
class DataExported(Event):
    event_type = "analytics.DataExported"
    aggregate_type = "Export"
    aggregate_id_field = "export_id"
    public = False

    export_id: str
    view: str
    rows: int
    exported_by: str


@dataclass(frozen=True)
class ReportGenerated(Event):
    event_type = "analytics.ReportGenerated"
    aggregate_type = "Report"
    aggregate_id_field = "report_id"
    public = False

    report_id: str
    month: str
    rows: int
