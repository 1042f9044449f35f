"""One vocabulary: plan limits, credit prices and metered prices must name metrics.

A database check (`manage.py check --database default`, and the tests), because the names live
in rows staff edit: `Plan.limits` keys, `CreditPrice.event_name`, `PlanMeteredPrice.metric` (and
its meter event name must be the metric's)."""

from __future__ import annotations

from django.core import checks
from django.db import DatabaseError


def vocabulary_problems() -> list[str]:
    from billing.models import Plan, PlanMeteredPrice
    from credits.models import CreditPrice

    from .models import Metric

    metrics = dict(Metric.objects.values_list("code", "stripe_meter_event_name"))
    problems = []
    for plan in Plan.objects.order_by("code"):
        for code in sorted(set(plan.limits or {}) - set(metrics)):
            problems.append(f"plan {plan.code!r} has a limit for {code!r}, which is not a metric")
    for name in CreditPrice.objects.exclude(event_name__in=list(metrics)).values_list(
        "event_name", flat=True
    ):
        problems.append(f"credit price {name!r} names no metric")
    for item in PlanMeteredPrice.objects.select_related("plan"):
        if item.metric not in metrics:
            problems.append(
                f"metered price of plan {item.plan.code!r} names {item.metric!r}, which is not a metric"
            )
        elif metrics[item.metric] != item.meter_event_name:
            problems.append(
                f"metered price of plan {item.plan.code!r}: meter event {item.meter_event_name!r}, "
                f"but metric {item.metric} sends {metrics[item.metric]!r}"
            )
    return problems


@checks.register(checks.Tags.database)
def vocabulary_check(app_configs=None, databases=None, **kwargs):
    if not databases:
        return []
    try:
        problems = vocabulary_problems()
    except DatabaseError:  # not migrated yet
        return []
    return [checks.Error(problem, id="usage.E001") for problem in problems]
