"""The invoice as a PDF (reportlab), with the same content as the printable page."""

from __future__ import annotations

from io import BytesIO

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from billing.models import BillingAccount, Invoice
from sharedkernel.templatetags.formatting import format_money


def invoice_pdf(invoice: Invoice, account: BillingAccount | None) -> bytes:
    buffer = BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=f"Invoice {invoice}",
        author="SubscriptionHub",
    )
    styles = getSampleStyleSheet()
    story = [
        Paragraph(f"Invoice {invoice.number or '(draft)'}", styles["Title"]),
        Paragraph(f"Status: {invoice.get_status_display()}", styles["Normal"]),
        Spacer(1, 6 * mm),
    ]
    facts = [
        ["Billed to", f"{invoice.customer_name} <{invoice.customer_email}>"],
        ["Issued", f"{invoice.issued_at:%B %-d, %Y}" if invoice.issued_at else "not yet"],
    ]
    if account is not None and account.address:
        facts.append(["Address", account.address])
    if invoice.period:
        facts.append(["Period", invoice.period.label()])
    if invoice.plan_name:
        facts.append(["Plan", invoice.plan_name])
    story.append(Table(facts, colWidths=[35 * mm, 130 * mm], style=[("TEXTCOLOR", (0, 0), (0, -1), colors.grey)]))
    story.append(Spacer(1, 8 * mm))
    rows = [["Description", "Amount"]]
    rows += [[Paragraph(line.description, styles["Normal"]), _money(line.amount)] for line in invoice.lines.all()]
    rows += [["Subtotal", _money(invoice.subtotal)], ["Tax", _money(invoice.tax)], ["Total", _money(invoice.total)]]
    if invoice.credit_applied.is_positive():
        rows.append(["Paid from account credit", _money(-invoice.credit_applied)])
    rows.append(["Amount due", _money(invoice.amount_due)])
    if invoice.amount_paid.is_positive():
        rows.append(["Paid", _money(invoice.amount_paid)])
    table = Table(rows, colWidths=[130 * mm, 35 * mm], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f1f3f5")),
                ("ALIGN", (1, 0), (1, -1), "RIGHT"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey),
                ("LINEABOVE", (0, -1), (-1, -1), 0.5, colors.grey),
                ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
            ]
        )
    )
    story.append(table)
    doc.build(story)
    return buffer.getvalue()


def _money(value) -> str:
    """The pages' money format, with an ASCII minus (the PDF's built-in fonts have no U+2212)."""
    return format_money(value, minus="-")
