"""The organization page (everything about one organization), the dj-stripe mirror read-only,
the long jobs with their progress, and who may reach any of it: staff only; tenants,
organization API keys and platform keys are sent to the login page; staff without the
action permission get 403 and change nothing."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.contrib import admin
from django.test import Client, RequestFactory
from django.urls import NoReverseMatch, reverse
from djstripe.models import Customer

from billing.models import AuditEntry, BackofficeJob, BillingNotice, Role
from billing.services import api_key_create, billing_notice_queue, platform_key_create
from credits.models import ReconcileRun
from credits.selectors import credit_summary_get, latest_reconcile_run
from credits.services import credit_consume, credit_grant
from tests.billing.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_the_organization_page_shows_everything(web, billing_org, billing_owner, webhooks, pack):
    from billing.services import subscription_create

    subscription_create(
        organization=billing_org,
        plan="starter",
        interval="month",
        payment_method="pm_card_visa",
        trial_days=0,
    )
    webhooks.deliver()
    credit_grant(organization=billing_org, amount=250, reason="Welcome promo", source="promo")
    credit_consume(organization=billing_org, amount=40, reason="sms", idempotency_key="c1")
    api_key_create(organization=billing_org, name="Zapier integration")
    billing_notice_queue(
        organization=billing_org, kind=BillingNotice.Kind.LOW_BALANCE, key="low:1", context={"balance": "1"}
    )
    page = web.get(f"/admin/billing/organizationpage/{billing_org.pk}/overview/")
    assert page.status_code == 200
    body = page.content.decode()
    overview = page.context["o"]
    assert overview.subscription.plan.code == "starter" and overview.subscriptions
    assert overview.credits.balance == D(1000) + D(250) - D(40)
    for expected in (
        "Starter",
        billing_org.stripe_subscription_id,
        "Welcome promo",
        "Zapier integration",
        billing_owner.email,
        "Low credit balance",
        "Visa ending 4242",
        "Grant credits…",
        "Cancel subscription…",
        "Usage this period",
        "Invoices and statements",
    ):
        assert expected in body, expected
    # The change page of the organization and the list both link to it.
    assert (
        f"/admin/billing/organizationpage/{billing_org.pk}/overview/"
        in web.get(f"/admin/billing/organization/{billing_org.pk}/change/").content.decode()
    )
    assert web.get(f"/admin/billing/organizationpage/{billing_org.pk}/change/").status_code == 302


@pytest.fixture
def tenant_clients(organization):
    """A tenant owner's session, an organization API key and a platform key holding every scope."""
    owner = MembershipFactory(organization=organization, role=Role.OWNER).user
    tenant = Client()
    tenant.force_login(owner)
    org_key = api_key_create(organization=organization, name="k").raw_key
    platform = platform_key_create(
        name="p", scopes=["credits:grant", "organizations:read", "analytics:read"]
    ).raw_key
    return [
        tenant,
        Client(HTTP_AUTHORIZATION=f"Bearer {org_key}"),
        Client(HTTP_AUTHORIZATION=f"Bearer {platform}"),
    ]


def _backoffice_urls(org) -> list[str]:
    base = f"/admin/billing/organizationpage/{org.pk}"
    return [
        f"{base}/overview/",
        *[f"{base}/{a}/" for a in ("grant", "adjust", "cancel", "resume", "refund")],
        "/admin/billing/auditentry/",
        "/admin/billing/backofficejob/",
        "/admin/billing/backofficejob/run/reconcile/",
        "/admin/credits/reconcilerun/",
        "/admin/djstripe/webhookeventtrigger/",
        "/admin/djstripe/webhookeventtrigger/1/replay/",
    ]


def test_tenants_and_keys_never_reach_the_back_office(tenant_clients, organization):
    for client in tenant_clients:
        for url in _backoffice_urls(organization):
            response = client.get(url)
            assert response.status_code == 302 and "/admin/login/" in response["Location"], url
            posted = client.post(url, {"amount": "5", "reason": "x", "idempotency_key": "k", "when": "now"})
            assert posted.status_code in (302, 403), url
    assert AuditEntry.objects.count() == 0 and credit_summary_balance(organization) == 0


def credit_summary_balance(org):
    return credit_summary_get(organization=org).balance


def test_staff_without_the_action_permission_may_look_but_not_act(viewer_web, organization):
    assert viewer_web.get(f"/admin/billing/organizationpage/{organization.pk}/overview/").status_code == 200
    page = viewer_web.get(f"/admin/billing/organizationpage/{organization.pk}/overview/").content.decode()
    assert "Grant credits…" not in page
    for action in ("grant", "adjust", "cancel", "resume", "refund"):
        url = f"/admin/billing/organizationpage/{organization.pk}/{action}/"
        assert viewer_web.get(url).status_code == 403
        assert viewer_web.post(url, {"amount": "5", "reason": "x", "idempotency_key": "k"}).status_code == 403
    assert viewer_web.post("/admin/billing/backofficejob/run/reconcile/", {"reason": "x"}).status_code == 403
    assert AuditEntry.objects.count() == 0 and BackofficeJob.objects.count() == 0
    assert credit_summary_balance(organization) == 0


def test_every_registered_stripe_mirror_model_refuses_add_change_and_delete(web, billing_org, superuser):
    request = RequestFactory().get("/admin/")
    request.user = superuser
    mirror = {m: a for m, a in admin.site._registry.items() if m._meta.app_label == "djstripe"}
    names = {m._meta.model_name for m in mirror}
    assert {"customer", "subscription", "charge", "invoice", "webhookeventtrigger"} <= names
    assert not names & {"coupon", "apikey", "transfer", "taxrate", "idempotencykey", "card", "bankaccount"}
    for model, model_admin in mirror.items():
        name = model._meta.model_name
        assert not model_admin.has_add_permission(request), name
        assert not model_admin.has_change_permission(request), name
        assert not model_admin.has_delete_permission(request), name
        assert model_admin.get_actions(request) == {}, name
        assert web.get(f"/admin/djstripe/{name}/add/").status_code == 403, name
        assert web.get(f"/admin/djstripe/{name}/").status_code == 200, name
    customer = Customer.objects.get(subscriber=billing_org)
    change_url = f"/admin/djstripe/customer/{customer.pk}/change/"
    assert web.get(change_url).status_code == 200  # a read-only view
    assert web.post(change_url, {"email": "hacked@evil.test"}).status_code == 403
    assert web.post(f"/admin/djstripe/customer/{customer.pk}/delete/", {"post": "yes"}).status_code == 403
    with pytest.raises(NoReverseMatch):  # dj-stripe's "custom action" URLs (resync, cancel) are gone
        reverse("admin:djstripe_custom_action", args=["_cancel", "subscription"])
    assert Customer.objects.get(pk=customer.pk).email == "billing@acme.test"
    index = web.get("/admin/").content.decode()
    assert "Stripe mirror (read-only)" in index


def test_reconcile_now_runs_as_a_job_with_progress(
    web, organization, celery_eager, django_capture_on_commit_callbacks
):
    page = web.get("/admin/billing/backofficejob/run/reconcile/")
    assert page.status_code == 200 and 'name="reason"' in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        done = web.post("/admin/billing/backofficejob/run/reconcile/", {"reason": "Before month end"})
    assert done.status_code == 302
    job = BackofficeJob.objects.get()
    assert job.status == "succeeded" and job.total > 0 and job.done == job.total and job.percent == 100
    run = ReconcileRun.objects.get(pk=job.result["reconcile_run"])
    assert run.trigger == "staff" and run.status == "ok" and latest_reconcile_run() == run
    entry = AuditEntry.objects.get()
    assert entry.action == "reconcile" and entry.reason == "Before month end"
    shown = web.get(f"/admin/billing/backofficejob/{job.pk}/change/").content.decode()
    assert "Open the reconcile run" in shown and f"{job.total} of {job.total}" in shown
    listing = web.get("/admin/billing/backofficejob/").content.decode()
    assert "Run catalogue sync now" in listing and "Run meter sync now" in listing
    assert web.post("/admin/billing/backofficejob/run/nonsense/", {"reason": "x"}).status_code == 403


def test_catalogue_sync_now(web, catalogue, celery_eager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert web.post("/admin/billing/backofficejob/run/catalogue_sync/", {"reason": ""}).status_code == 302
    job = BackofficeJob.objects.get()
    assert job.status == "succeeded" and job.result == {"products_created": 0, "prices_created": 0}
    assert AuditEntry.objects.get().action == "catalogue_sync"


def test_meter_sync_now(web, organization, celery_eager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            web.post("/admin/billing/backofficejob/run/meter_sync/", {"reason": "check"}).status_code == 302
        )
    job = BackofficeJob.objects.get()
    assert job.status == "succeeded" and job.result["organizations"] == 0
    assert AuditEntry.objects.get().action == "meter_sync"


def test_resend_an_invoice_from_the_page_and_from_the_invoices_admin(
    web, organization, superuser, celery_eager, django_capture_on_commit_callbacks
):
    from django.core import mail
    from django.utils import timezone

    from invoices.services import statement_generate

    credit_grant(organization=organization, amount=10, reason="activity")
    start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    statement = statement_generate(organization=organization, period_start=start, period_end=timezone.now())
    url = f"/admin/billing/organizationpage/{organization.pk}/invoices/{statement.pk}/resend/"
    page = web.get(url)
    assert page.status_code == 200 and "Send it again" in page.content.decode()
    assert web.post(url, {"email": "not-an-email", "reason": ""}).status_code == 200
    assert AuditEntry.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert web.post(url, {"email": "", "reason": "Customer lost it"}).status_code == 302
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.reason, entry.organization_id) == (
        "invoice_resend",
        "Customer lost it",
        organization.pk,
    )
    assert entry.after["to"] == [organization.billing_email]
    assert any(organization.billing_email in m.to for m in mail.outbox)
    # The invoices admin's bulk action lands in the audit log too (without a reason).
    web.post("/admin/invoices/invoice/", {"action": "resend", "_selected_action": [str(statement.pk)]})
    assert AuditEntry.objects.filter(action="invoice_resend").count() == 2
