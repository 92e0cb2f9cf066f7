"""`hds fhir --config FILE`: one FHIR service from the config the operator renders, on the
shared PostgreSQL, with its health and metrics endpoints and a graceful stop on SIGTERM."""

from __future__ import annotations

import signal
import subprocess

import requests

from conftest import FHIR_JSON, find_binary


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
