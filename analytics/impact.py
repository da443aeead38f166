"""A price migration's impact, replayed from the stored events in an in-memory sandbox.

The last N months of the selected subscriptions' history are read from the event store in
stored order (``eventstore.read``, the order ``replay_events`` rebuilds projections in) and
folded into plain Python objects: nothing here writes a table or touches a projection.

Actual figures are what the history says: invoice subtotals from ``billing.InvoiceFinalized``
(revenue is before tax), invoice totals with their tax, and MRR from the subscriptions' prices. Proposed figures re-bill the
same history under the migration's target version as if it had been in force all along:
a plan line at the target price (scaled for a partial period), usage lines re-priced from
``UsageCalculated`` under the new included quantities and rates (half-up per line),
proration, credit and discount lines unchanged; an invoice's tax scaled with its subtotal (its own
effective rate, half-up).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from analytics import acl
from analytics.impact_forecast import forecast, month_row, next_month
from analytics.models import monthly
from analytics.vocabulary import Interval, Status
from sharedkernel.events import DomainEvent
from sharedkernel.values import Money

#: What the replay folds (:meth:`apply`): plan versions, the migration, each subscription's changes, its usage
#: and its invoices.
EVENT_TYPES = (
    "subscriptions.PlanCreated",
    "subscriptions.PlanUpdated",
    "subscriptions.PriceMigrationDrafted",
    *acl.SUBSCRIPTION_CHANGES,
    "subscriptions.UsageCalculated",
    "billing.InvoiceFinalized",
)


class UnknownMigration(LookupError):
    pass


@dataclass
class _Sub:
    subscription_id: str
    customer_id: str
    plan_id: str
    version: int
    interval: Interval
    currency: str
    price: Money
    status: Status
    created_at: datetime
    selected: bool = False
    usage: dict[str, int] | None = None  #: the closed period's usage, not yet invoiced


@dataclass
class Impact:
    months: list[dict] = field(default_factory=list)
    projection: list[dict] = field(default_factory=list)
    assumptions: dict = field(default_factory=dict)
    customers: list[dict] = field(default_factory=list)
    overage: list[dict] = field(default_factory=list)
    invoices: list[dict] = field(default_factory=list)  #: month × currency: count, actual and proposed totals
    migration: acl.MigrationTerms | None = None
    target: acl.PlanTerms | None = None  #: the proposed terms (the migration's target version)


def month_keys(now: datetime, months: int) -> list[str]:
    year, month, keys = now.year, now.month, []
    for _ in range(months):
        keys.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return keys[::-1]


def _usage_charge(used: int, included: int, rate: Decimal | None, currency: str) -> Money:
    if rate is None or used <= included:
        return Money.zero(currency)
    return Money.rounded(rate * (used - included), currency)


class Sandbox:
    """Folds events into actual and proposed figures for one migration."""

    def __init__(self, migration_id: str, *, now: datetime, months: int) -> None:
        self.migration_id, self.now = migration_id, now
        self.keys = month_keys(now, months)
        self.first = self.keys[0]
        self.versions: dict[tuple[str, int], acl.PlanTerms] = {}
        self.migration: acl.MigrationTerms | None = None
        self.subs: dict[str, _Sub] = {}
        self.revenue: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # (month, cur) → [act, prop]
        self.invoiced: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])  # → [n, act, prop] totals
        self.mrr: dict[tuple[str, str], list[int]] = {}
        self.by_customer: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        self.overage_totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self.month_of_last: str | None = None
        self.churned: dict[str, int] = defaultdict(int)
        self.upgraded: dict[str, int] = defaultdict(int)
        self.active_at_start: dict[str, int] = {}

    # -- terms ---------------------------------------------------------------------
    @property
    def target(self) -> acl.PlanTerms | None:
        m = self.migration
        return self.versions.get((m.plan_id, m.to_version)) if m else None

    def _matches(self, sub: _Sub) -> bool:
        m = self.migration
        if m is None or sub.plan_id != m.plan_id or sub.version >= m.to_version and not m.subscription_ids:
            return False
        if m.from_versions and sub.version not in m.from_versions:
            return False
        if m.currencies and sub.currency not in m.currencies:
            return False
        if m.subscription_ids and sub.subscription_id not in m.subscription_ids:
            return False
        return m.created_before is None or sub.created_at < m.created_before

    def _on_target(self, sub: _Sub) -> bool:
        t = self.target
        return bool(sub.selected and t and sub.plan_id == t.plan_id and sub.currency in t.prices)

    def proposed_price(self, sub: _Sub) -> Money:
        return self.target.prices[sub.currency] if self._on_target(sub) else sub.price

    # -- the fold ------------------------------------------------------------------
    def learn(self, event: DomainEvent) -> bool:
        """Plan versions and the migration's selection: known before the history is replayed (a
        migration is drafted, and its target version published, after the months it is tested on)."""
        name = event.name
        if name in ("PlanCreated", "PlanUpdated"):
            terms = acl.plan_terms(event.payload)
            self.versions[(terms.plan_id, terms.version)] = terms
            return True
        if name == "PriceMigrationDrafted":
            if acl.migration_id(event.payload) == self.migration_id:
                self.migration = acl.migration_terms(event.payload)
            return True
        return False

    def apply(self, event: DomainEvent) -> None:
        month = event.occurred_on.strftime("%Y-%m")
        self._close_months(month)
        if self.learn(event):
            return
        name = event.name
        if name == "InvoiceFinalized":
            self._invoice(acl.invoice(event.payload), month)
            return
        if name == "UsageCalculated":
            sub_id = acl.usage_subscription(event.payload)
            if sub_id in self.subs:
                self.subs[sub_id].usage = acl.usage_used(event.payload)
            return
        fact = acl.subscription_changed(event)
        sub = self.subs.get(fact.subscription_id)
        plan = fact.plan
        if sub is None:
            if not fact.created:
                return
            sub = _Sub(
                fact.subscription_id,
                fact.customer_id,
                plan.id,
                plan.version,
                plan.interval,
                fact.price.currency,
                fact.price,
                fact.status,
                event.occurred_on,
            )
            self.subs[fact.subscription_id] = sub
        else:
            if fact.upgrade and sub.selected and month >= self.first:
                self.upgraded[month] += 1
            if fact.cancelled and sub.selected and month >= self.first:
                self.churned[month] += 1
            sub.plan_id, sub.version, sub.interval = plan.id, plan.version, plan.interval
            sub.price = fact.price or sub.price
            sub.status = fact.status
        if not sub.selected and self._matches(sub):
            sub.selected = True

    def _invoice(self, invoice: acl.Invoice, month: str) -> None:
        sub = self.subs.get(invoice.subscription_id or "")
        if sub is None or not sub.selected or month < self.first:
            if sub is not None:
                sub.usage = None
            return
        currency, target = invoice.currency, self.target
        actual = proposed = Money.zero(currency)
        usage_lines = {}
        for line in invoice.lines:
            actual = actual + line.amount
            if line.kind == "plan" and self._on_target(sub) and not sub.price.is_zero():
                new = Money.rounded(line.amount.amount * self.proposed_price(sub).amount / sub.price.amount, currency)
                proposed = proposed + new
            elif line.kind == "usage" and line.metric:
                usage_lines[line.metric] = usage_lines.get(line.metric, Money.zero(currency)) + line.amount
            else:
                proposed = proposed + line.amount
        used = sub.usage or {}
        for metric in set(usage_lines) | set(used):
            act = usage_lines.get(metric, Money.zero(currency))
            if self._on_target(sub) and metric in used:
                rate = target.overage_rates.get(metric, {}).get(currency)
                new = _usage_charge(used[metric], target.included_usage.get(metric, 0), rate, currency)
                units = max(0, used[metric] - target.included_usage.get(metric, 0)) if rate is not None else 0
            else:
                new, units = act, None
            proposed = proposed + new
            totals = self.overage_totals[(metric, currency)]
            totals[1] += act.minor_units
            totals[3] += new.minor_units
            totals[2] += units if units is not None else 0
        sub.usage = None
        tax = invoice.tax
        # the invoice's own effective tax rate, applied to the proposed subtotal
        new_tax = tax if actual.is_zero() else Money.rounded(tax.amount * proposed.amount / actual.amount, currency)
        invoiced = self.invoiced[(month, currency)]
        invoiced[0] += 1
        invoiced[1] += (actual + tax).minor_units
        invoiced[2] += (proposed + new_tax).minor_units
        row = self.revenue[(month, currency)]
        row[0] += actual.minor_units
        row[1] += proposed.minor_units
        cust = self.by_customer[(sub.customer_id, currency)]
        cust[0] += actual.minor_units
        cust[1] += proposed.minor_units

    def _close_months(self, upto: str) -> None:
        """Take MRR at the end of every month before ``upto`` (events of later months not yet applied)."""
        while self.month_of_last is not None and self.month_of_last < upto:
            self._snapshot(self.month_of_last)
            self.month_of_last = next_month(self.month_of_last)
        if self.month_of_last is None:
            self.month_of_last = upto

    def _snapshot(self, month: str) -> None:
        if month < self.first or month > self.keys[-1]:
            return
        totals: dict[str, list[int]] = {}
        active = 0
        for sub in self.subs.values():
            if not sub.selected or sub.status != Status.ACTIVE:
                continue
            active += 1
            row = totals.setdefault(sub.currency, [0, 0])
            row[0] += monthly(sub.price, sub.interval).minor_units
            row[1] += monthly(self.proposed_price(sub), sub.interval).minor_units
        for currency, row in totals.items():
            self.mrr[(month, currency)] = row
        nxt = next_month(month)
        self.active_at_start[nxt] = active

    def finish(self) -> Impact:
        self._close_months(next_month(self.keys[-1]))
        currencies = sorted({c for _, c in self.revenue} | {c for _, c in self.mrr})
        impact = Impact(migration=self.migration, target=self.target)
        for key in self.keys:
            for currency in currencies:
                rev, mrr = self.revenue.get((key, currency), [0, 0]), self.mrr.get((key, currency), [0, 0])
                impact.months.append(month_row(key, currency, rev, mrr))
        impact.customers = sorted(
            (
                {
                    "customer": c,
                    "currency": cur,
                    "actual": Money.from_minor(a, cur),
                    "proposed": Money.from_minor(p, cur),
                    "change": Money.from_minor(p - a, cur),
                }
                for (c, cur), (a, p) in self.by_customer.items()
            ),
            # by the rise relative to the bill, which compares across currencies (minor units do not)
            key=lambda r: (-(Decimal(r["change"].minor_units) / max(1, r["actual"].minor_units)), r["customer"]),
        )[:10]
        for row in impact.customers:  # a percentage, as text (exact, and JSON-safe for the API)
            billed = row["actual"].amount
            rise = (100 * row["change"].amount / billed).quantize(Decimal("0.1"), ROUND_HALF_UP) if billed else None
            row["rise_percent"] = str(rise) if rise is not None else None
        impact.overage = [
            {
                "metric": m,
                "currency": cur,
                "actual": Money.from_minor(a, cur),
                "proposed_units": pu,
                "proposed": Money.from_minor(p, cur),
            }
            for (m, cur), (_, a, pu, p) in sorted(self.overage_totals.items())
        ]
        impact.invoices = [
            {
                "month": key,
                "currency": currency,
                "count": n,
                "actual_total": Money.from_minor(a, currency),
                "proposed_total": Money.from_minor(p, currency),
            }
            for key in self.keys
            for currency in currencies
            for n, a, p in [self.invoiced.get((key, currency), [0, 0, 0])]
        ]
        forecast(self, impact, currencies)
        return impact


def replay(
    events: Iterable[DomainEvent],
    migration_id: str,
    *,
    now: datetime,
    months: int,
    terms: Iterable[DomainEvent] = (),
) -> Impact:
    """The impact of ``migration_id`` folded from ``events`` (in stored order). ``terms``: the
    migration's PriceMigrationDrafted and its plan's versions, learnt before the history is replayed."""
    sandbox = Sandbox(migration_id, now=now, months=months)
    for event in terms:
        sandbox.learn(event)
    last = sandbox.keys[-1]
    for event in events:
        if event.occurred_on.strftime("%Y-%m") > last:
            continue  # after the window (a test clock's future, or an event of this very month's end)
        sandbox.apply(event)
    if sandbox.migration is None:
        raise UnknownMigration(migration_id)
    return sandbox.finish()


def impact_of(migration_id: str, *, now: datetime, months: int = 6) -> Impact:
    """Read the migration's terms (its draft, its plan's versions), then the store in stored order
    (the replay order), and fold it; no table is written."""
    from sharedkernel.eventstore import read

    drafted = list(read(aggregate_id=migration_id, event_types=["subscriptions.PriceMigrationDrafted"]))
    if not drafted:
        raise UnknownMigration(migration_id)
    plan_id = acl.migration_terms(drafted[0].payload).plan_id
    versions = list(read(aggregate_id=plan_id, event_types=["subscriptions.PlanCreated", "subscriptions.PlanUpdated"]))
    events = read(event_types=EVENT_TYPES, chunk=5000)
    return replay(events, migration_id, now=now, months=months, terms=[*versions, *drafted])
