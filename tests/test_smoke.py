import pytest

pytestmark = pytest.mark.django_db


def test_healthz_reports_database_and_redis(client):
    body = client.get("/healthz").json()
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True
