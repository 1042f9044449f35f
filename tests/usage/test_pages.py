"""The usage page and the dashboard's usage panel and soft-quota alerts, from events recorded
through the API."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def used(billing_client, billing_org, client, billing_owner):
    """45 SMS of the Free plan's 50 (a soft warning) and 3 calls, on two platforms."""
    events = [
        {"metric": "SMS_SENT", "quantity": 40, "idempotency_key": "e1", "dimensions": {"platform": "ios"}},
        {"metric": "SMS_SENT", "quantity": 5, "idempotency_key": "e2", "dimensions": {"platform": "web"}},
        {"metric": "CALL_MADE", "quantity": 3, "idempotency_key": "e3", "dimensions": {"platform": "ios"}},
    ]
    response = billing_client.post(
        f"/api/v1/organizations/{billing_org.id}/usage/events", {"events": events}, format="json"
    )
    assert response.status_code in (200, 201, 202), response.content
    assert response.json()["accepted"] == 3
    client.force_login(billing_owner)
    return billing_org


def test_usage_page_bars_charts_top_platforms_and_peak_hours(client, used):
    html = client.get(f"/billing/{used.id}/usage/").content.decode()
    assert 'aria-current="page" data-nav="usage"' in html
    assert 'data-usage="SMS_SENT"' in html and "45 of 50" in html and 'class="meter warn"' in html
    assert 'data-chart="SMS_SENT"' in html and 'data-chart="CALL_MADE"' in html
    assert html.count('<svg class="chart"') == 2 and "Show the figures" in html
    assert 'data-dimension="platform"' in html and "<td>ios</td>" in html
    assert 'id="peak-hours"' in html


def test_dashboard_usage_panel_and_soft_quota_alert(client, used):
    html = client.get(f"/billing/{used.id}/").content.decode()
    assert 'id="panel-usage"' in html and "45 of 50" in html
    assert 'data-alert="quota-SMS_SENT"' in html and "90% of the plan&#x27;s limit used" in html
    assert f'href="/billing/{used.id}/upgrade/" data-action="quota-SMS_SENT"' in html


def test_a_reached_limit_is_a_danger_alert_linking_to_the_upgrade(billing_client, client, used):
    more = {"metric": "SMS_SENT", "quantity": 5, "idempotency_key": "e4"}
    billing_client.post(f"/api/v1/organizations/{used.id}/usage/events", {"events": [more]}, format="json")
    html = client.get(f"/billing/{used.id}/").content.decode()
    assert "the plan&#x27;s limit is reached (50 of 50)" in html and ">Upgrade<" in html


def test_metrics_not_in_the_plan_raise_no_alert_until_used(client, billing_org, billing_owner):
    client.force_login(billing_owner)
    html = client.get(f"/billing/{billing_org.id}/").content.decode()
    assert "data-alert=" not in html  # the Free plan's 0-limit metrics, unused
    assert 'data-usage="AI_VOICE_GENERATED"' not in html
