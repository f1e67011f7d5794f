"""GET /healthz: liveness (process and database), and readiness with ?ready=1 (a
django-q2 cluster is alive)."""

import pytest
from django.test import Client

from tests.conftest import wait_for


def test_it_answers_liveness_without_a_cluster(db):
    response = Client().get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"ok": True, "database": True}


def test_it_is_not_ready_while_no_cluster_runs(db):
    response = Client().get("/healthz?ready=1")

    assert response.status_code == 503
    assert response.json() == {"ok": False, "database": True, "clusters": 0}


@pytest.mark.e2e
def test_it_is_ready_once_a_cluster_runs_and_not_after_it_stopped(service_factory):
    client = Client()
    service = service_factory()
    service.wait_running()

    response = client.get("/healthz?ready=1")

    assert response.status_code == 200
    assert response.json() == {"ok": True, "database": True, "clusters": 1}
    service.stop()
    # The heartbeat expires a few seconds after the cluster stops.
    wait_for(lambda: client.get("/healthz?ready=1").status_code == 503, timeout=30, message="readiness to drop")
