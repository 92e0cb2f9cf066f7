"""`hds fhir --config FILE`: one FHIR service from the config the operator renders, on the
shared PostgreSQL, with its health and metrics endpoints and a graceful stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import pytest
import requests

from conftest import FHIR_JSON, find_binary, free_port

ADMIN_URL = os.environ.get("HDS_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


@pytest.fixture()
def fhir_service(tmp_path):
    db = f"hds_test_{uuid.uuid4().hex}"
    subprocess.run(["psql", ADMIN_URL, "-qc", f'create database "{db}"'], check=True)
    server, _ = ADMIN_URL.rsplit("/", 1)
    port = free_port()
    config = tmp_path / "fhir.yaml"
    config.write_text(
        "name: solo\n"
        "workspace: demo\n"
        f"listen: 127.0.0.1:{port}\n"
        f"postgres: {{url: '{server}/{db}', poolSize: 4}}\n"
        "auth: {mode: none}\n"
    )
    log = (tmp_path / "hds.log").open("w")
    proc = subprocess.Popen([str(find_binary()), "fhir", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if requests.get(f"{base}/health/check", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert proc.poll() is None, (tmp_path / "hds.log").read_text()
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("hds fhir did not become healthy:\n" + (tmp_path / "hds.log").read_text())
    yield base, proc, tmp_path / "hds.log"
    if proc.poll() is None:
        proc.kill()
    subprocess.run(["psql", ADMIN_URL, "-qc", f'drop database if exists "{db}" with (force)'], check=False)


def test_config_file_service_serves_fhir_health_and_metrics(fhir_service):
    base, proc, log = fhir_service
    health = requests.get(f"{base}/health/check")
    assert health.json()["status"] == "Healthy"
    created = requests.post(f"{base}/Patient", json={"resourceType": "Patient", "active": True},
                            headers={"content-type": FHIR_JSON})
    assert created.status_code == 201
    assert created.headers["location"].startswith(f"{base}/Patient/")
    metrics = requests.get(f"{base}/metrics").text
    assert 'hds_http_requests_total{service="solo",method="POST",status="201"}' in metrics
    assert "hds_http_request_duration_seconds" in metrics

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0, log.read_text()
    text = log.read_text()
    assert "SIGTERM received, draining" in text
    assert "all requests drained" in text
    assert "AUTHENTICATION IS OFF" in text, "turning auth off must be loud"


def test_bad_config_is_a_clear_error(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("name: x\npostgres: {url: 'postgres://nobody@127.0.0.1:1/none'}\nauht: {}\n")
    out = subprocess.run([str(find_binary()), "fhir", "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "auht" in out.stderr, out.stderr
