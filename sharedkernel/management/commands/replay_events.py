"""Re-run handlers over the stored events, in global order, from a position.

    manage.py replay_events --handler analytics.project_subscription
    manage.py replay_events --context analytics --from-position 1200
    manage.py replay_events --context analytics --reset     # rebuild projections from scratch

Replay bypasses the delivery ledger: it is how a projection is rebuilt or a new
handler catches up. Handlers with effects outside their own tables (e-mails,
invoices) are refused unless --force, because replaying them repeats the effect.

While a handler is replayed, live delivery to it is paused (``bus.replay_fence``): workers leave
its deliveries open and the relay runs them once the replay is done.
"""

from __future__ import annotations

import fnmatch

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from tqdm import tqdm

from sharedkernel.bus import HANDLERS, HandlerSpec, handler_transaction, replay_fence
from sharedkernel.eventstore import to_domain_event
from sharedkernel.models import StoredEvent


def _type_filter(spec: HandlerSpec) -> Q:
    condition = Q()
    for pattern in spec.patterns:
        if pattern == "*":
            return Q()
        if pattern.endswith(".*") and not any(ch in pattern[:-2] for ch in "*?["):
            condition |= Q(event_type__startswith=pattern[:-1])
        elif not any(ch in pattern for ch in "*?["):
            condition |= Q(event_type=pattern)
        else:
            return Q()  # an unusual glob: filter in Python
    return condition


class Command(BaseCommand):
    help = "Re-run a named handler (or all handlers of a context) over stored events from a position."

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--handler", action="append", help="Handler name, e.g. analytics.project_mrr (repeatable).")
        target.add_argument("--context", help="Every handler of this context, e.g. analytics.")
        parser.add_argument("--from-position", type=int, default=0, help="Replay events after this global position.")
        parser.add_argument("--batch", type=int, default=500, help="Events per transaction.")
        parser.add_argument("--reset", action="store_true", help="Call each handler's reset (truncate) first.")
        parser.add_argument("--force", action="store_true", help="Also replay handlers not marked replay-safe.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (logs, CI).")

    def handle(self, *args, **options):
        specs = self._select(options)
        for spec in specs:
            if not spec.replay_safe and not options["force"]:
                raise CommandError(
                    f"{spec.name} has effects beyond its own tables and is not replay-safe; use --force if you mean it."
                )
        for spec in specs:
            if options["reset"] and spec.reset is None:
                raise CommandError(f"{spec.name} has no reset; replay it without --reset.")
            with replay_fence(spec.name) as keep_fence:
                if options["reset"]:
                    spec.reset()
                count = self._replay(spec, options, keep_fence)
            self.stdout.write(self.style.SUCCESS(f"{spec.name}: replayed {count} event(s)."))

    def _select(self, options) -> list[HandlerSpec]:
        if options["handler"]:
            missing = [name for name in options["handler"] if name not in HANDLERS]
            if missing:
                known = ", ".join(sorted(HANDLERS))
                raise CommandError(f"Unknown handler(s): {', '.join(missing)}. Known: {known}")
            return [HANDLERS[name] for name in options["handler"]]
        specs = [spec for spec in HANDLERS.values() if fnmatch.fnmatchcase(spec.name, f"{options['context']}.*")]
        if not specs:
            raise CommandError(f"No handlers in context {options['context']!r}.")
        return sorted(specs, key=lambda spec: spec.name)

    def _replay(self, spec: HandlerSpec, options, keep_fence) -> int:
        query = StoredEvent.objects.filter(_type_filter(spec), position__gt=options["from_position"]).order_by(
            "position"
        )
        total = query.count()
        done = 0
        position = options["from_position"]
        with tqdm(total=total, desc=spec.name, unit="ev", disable=options["no_progress"], file=self.stderr) as bar:
            while True:
                rows = list(query.filter(position__gt=position)[: options["batch"]])
                if not rows:
                    break
                events = [e for e in map(to_domain_event, rows) if spec.subscribes_to(e.event_type)]
                if events:
                    with handler_transaction():
                        spec.handle(events)
                done += len(events)
                keep_fence()
                position = rows[-1].position
                bar.update(len(rows))
        return done
