"""Tenant pages of the usage app (`/billing/<org>/usage/`): usage of the current period against the
plan's limits, a chart per metric by day, the top values of the dimensions (platforms, ...), the
busiest hours and the credits spent so far. Also the dashboard's usage panel and the soft-quota
alerts, registered in `billing.pages` by `UsageConfig.ready()`. Everything is read through
`usage.selectors`, as `GET /usage`, `/usage/{metric}` and `/usage/stats` answer it."""

from __future__ import annotations

from datetime import timedelta

from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats, timezone
from django.views.decorators.http import require_GET

from billing.pages import Alert, Page, organization_page, shell_context
from billing.templatetags.money import format_credits

from .selectors import metric_get, usage_series_get, usage_stats_get, usage_summary_get


def _day_points(organization, metric, start, end) -> list[dict]:
    """One point per day of [start, end), zeros included."""
    series = usage_series_get(organization=organization, metric=metric, start=start, end=end, group_by="day")
    by_day = {point.bucket.date(): point.quantity for point in series.series}
    first = start.date()
    days = max((end.date() - first).days + (1 if end.time() else 0), 1)
    return [
        {
            "label": formats.date_format(first + timedelta(days=n), "M j"),
            "value": by_day.get(first + timedelta(days=n), 0),
        }
        for n in range(days)
    ]


def _bars(summary) -> list:
    """Metrics used this period or with a limit in the plan, the closest to their limit first."""
    rows = [m for m in summary.usage if m.current or (m.limit and not m.unlimited)]
    return sorted(rows, key=lambda m: (-(m.percentage or 0), -m.current, m.metric))


@organization_page()
@require_GET
def usage_page(request, page: Page):
    organization, now = page.organization, timezone.now()
    summary = usage_summary_get(organization=organization, now=now)
    stats = usage_stats_get(organization=organization, start=summary.period_start, end=now)
    end = min(now, summary.period_end)
    charts = []
    for totals in stats.metrics:
        metric = metric_get(code=totals.metric)
        if metric is None or not totals.quantity:
            continue
        charts.append(
            {
                "metric": totals,
                "name": metric.name,
                "unit": metric.unit,
                "points": _day_points(organization, metric, summary.period_start, end),
            }
        )
    context = {
        **shell_context(page, active="usage", title="Usage"),
        "summary": summary,
        "bars": _bars(summary),
        "stats": stats,
        "charts": charts,
        "peak_hours": [{"hour": h, "quantity": q, "events": e} for h, q, e in stats.peak_hours],
    }
    return render(request, "usage/usage.html", context)


# --------------------------------------------------------------------------- dashboard
def usage_panel(page: Page) -> str:
    organization, now = page.organization, timezone.now()
    summary = usage_summary_get(organization=organization, now=now)
    bars = _bars(summary)[:5]
    chart = None
    busiest = max(
        (m for m in summary.usage if m.current), key=lambda m: (m.percentage or 0, m.current), default=None
    )
    if busiest is not None:
        metric = metric_get(code=busiest.metric)
        start = (now - timedelta(days=29)).replace(hour=0, minute=0, second=0, microsecond=0)
        chart = {"name": busiest.name, "points": _day_points(organization, metric, start, now)}
    context = {"organization": organization, "summary": summary, "bars": bars, "chart": chart}
    return render_to_string("usage/panels/usage.html", context, request=page.request)


def usage_alerts(page: Page):
    """Soft quota warnings (80 % of a limit) and limits reached, with the way to a bigger plan."""
    summary = usage_summary_get(organization=page.organization, now=timezone.now())
    upgrade = reverse("billing-upgrade", args=[page.organization.pk])
    for m in summary.usage:
        if m.limit is None or m.unlimited or m.overage_billed or not m.current:
            continue  # a limit of 0 on an unused metric is "not in this plan", not a warning
        figures = f"{format_credits(m.current)} of {format_credits(m.limit)}"
        if m.limit_reached:
            yield Alert(
                f"quota-{m.metric}",
                "danger",
                f"{m.name}: the plan's limit is reached ({figures}); more is refused until the next period.",
                "Upgrade",
                upgrade,
            )
        elif m.soft_limit_warning:
            yield Alert(
                f"quota-{m.metric}",
                "warning",
                f"{m.name}: {round(m.percentage or 0)}% of the plan's limit used ({figures}).",
                "See plans",
                upgrade,
            )
