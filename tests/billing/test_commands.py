import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from billing.models import Membership, Role

pytestmark = pytest.mark.django_db


def run(*args) -> dict:
    out = StringIO()
    call_command("create_organization", *args, stdout=out)
    return json.loads(out.getvalue())


def test_create_organization_prints_json_with_a_working_key():
    out = run("Acme", "--owner-email", "Boss@Acme.test", "--owner-password", "s3cret-pass!", "--api-key")
    assert out["owner_email"] == "boss@acme.test"
    membership = Membership.objects.get(organization_id=out["organization_id"])
    assert membership.role == Role.OWNER and membership.user.check_password("s3cret-pass!")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {out['api_key']}")
    assert client.get(f"/api/v1/organizations/{out['organization_id']}").json()["name"] == "Acme"


def test_create_organization_without_key_has_no_key_field():
    out = run("Beta", "--owner-email", "b@beta.test")
    assert set(out) == {"organization_id", "owner_email"}


def test_blank_name_is_a_clear_error():
    with pytest.raises(CommandError, match="name"):
        run("  ", "--owner-email", "x@y.test")


def test_seed_demo_is_idempotent_and_login_works(client):
    out = StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=StringIO())
    assert Membership.objects.filter(user__username="owner@demo.example").count() == 1
    assert "owner@demo.example" in out.getvalue()
    response = client.post(
        "/accounts/login/", {"username": "owner@demo.example", "password": "demo-billing-2026"}
    )
    assert response.status_code == 302
    page = client.get("/billing/")
    assert b"Demo Organization" in page.content


def test_seed_demo_prints_a_working_platform_key_and_revokes_the_last_one():
    from billing.models import Organization, PlatformKey

    first, second = StringIO(), StringIO()
    call_command("seed_demo", "--no-stripe", stdout=first)
    call_command("seed_demo", "--no-stripe", stdout=second)
    keys = [
        line.split()[2]
        for out in (first, second)
        for line in out.getvalue().splitlines()
        if "platform key:" in line
    ]
    assert len(keys) == 2 and all(k.startswith("bpk_") for k in keys)
    org = Organization.objects.get(name="Demo Organization")
    for key, status in zip(keys, (401, 200), strict=True):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        assert client.get(f"/api/v1/organizations/{org.id}/credits").status_code == status
    assert PlatformKey.objects.filter(revoked_at__isnull=True).count() == 1


def test_create_platform_key_prints_json_last_and_the_key_works(billing_org):
    out = StringIO()
    call_command(
        "create_platform_key",
        "back end",
        "--scope",
        "credits:consume",
        "--scope",
        "organizations:read",
        stdout=out,
    )
    printed = json.loads(out.getvalue().strip().splitlines()[-1])
    assert printed["scopes"] == ["credits:consume", "organizations:read"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {printed['api_key']}")
    assert client.get(f"/api/v1/organizations/{billing_org.id}/credits").status_code == 200
    refused = client.post(
        f"/api/v1/organizations/{billing_org.id}/credits/grant",
        {"amount": 5, "reason": "x", "idempotency_key": "k"},
        format="json",
    )
    assert refused.status_code == 403


def test_create_platform_key_refuses_unknown_scopes():
    with pytest.raises(CommandError, match="Unknown scopes"):
        call_command("create_platform_key", "x", "--scope", "everything", stdout=StringIO())


def test_register_stripe_webhook_is_idempotent(stripe_emulator, settings):
    from djstripe.models import WebhookEndpoint

    settings.SITE_URL = "https://billing.example.com"
    out = StringIO()
    call_command("register_stripe_webhook", stdout=out)
    call_command("register_stripe_webhook", stdout=StringIO())
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.url.startswith("https://billing.example.com/stripe/webhook/") and endpoint.secret
    assert [e["url"] for e in stripe_emulator.objects("webhook_endpoint")] == [endpoint.url]
    assert endpoint.url in out.getvalue()


def test_register_stripe_webhook_again_after_stripe_lost_it(stripe_emulator, settings):
    import stripe
    from djstripe.models import WebhookEndpoint

    from tests.stripe_helpers import STRIPE_KEY

    settings.SITE_URL = "https://billing.example.com"
    call_command("register_stripe_webhook", stdout=StringIO())
    stripe.WebhookEndpoint.delete(WebhookEndpoint.objects.get().id, **STRIPE_KEY)
    call_command("register_stripe_webhook", stdout=StringIO())
    live = [e for e in stripe_emulator.objects("webhook_endpoint") if not e.get("deleted")]
    assert len(live) == 1 and WebhookEndpoint.objects.filter(id=live[0]["id"]).exists()
