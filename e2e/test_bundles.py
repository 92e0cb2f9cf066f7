"""Batch and transaction Bundles driven by the real clients: fhirclient posts a Synthea-style
transaction, fhirpy finds what it wrote; and a server killed in the middle of a transaction
leaves nothing of it behind."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid

import pytest
import requests
from fhirclient import client
from fhirpy import SyncFHIRClient

from conftest import ADMIN_URL, FHIR_JSON


def patient_record(mrn: str, observations: int) -> dict:
    """One patient and their Observations, as Synthea writes them: POSTs with urn:uuid fullUrls."""
    p = f"urn:uuid:{uuid.uuid4()}"
    entries = [
        {
            "fullUrl": p,
            "resource": {
                "resourceType": "Patient",
                "identifier": [{"system": "urn:e2e:bundle", "value": mrn}],
                "name": [{"family": "Bundle", "given": ["Tx"]}],
            },
            "request": {"method": "POST", "url": "Patient"},
        }
    ]
    for i in range(observations):
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "subject": {"reference": p},
                    "valueQuantity": {"value": 60 + i % 40, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


@pytest.fixture(scope="module")
def smart(base_url, auth_headers):
    c = client.FHIRClient(settings={"app_id": "hds-e2e", "api_base": base_url})
    c.server.session.headers.update(auth_headers)
    return c.server


@pytest.fixture(scope="module")
def fp(base_url, auth_headers):
    return SyncFHIRClient(base_url, authorization=auth_headers["Authorization"], extra_headers={"Accept": FHIR_JSON})


def test_fhirclient_transaction_then_fhirpy_finds_it(smart, fp, unique):
    bundle = patient_record(unique, 3)
    response = smart.post_json("", bundle).json()
    assert response["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in response["entry"]]
    assert statuses == ["201 Created"] * 4
    pid = response["entry"][0]["resource"]["id"]
    patient = fp.resources("Patient").search(identifier=f"urn:e2e:bundle|{unique}").get()
    assert patient.id == pid
    observations = fp.resources("Observation").search(subject=f"Patient/{pid}").fetch_all()
    assert len(observations) == 3
    assert {o["subject"]["reference"] for o in observations} == {f"Patient/{pid}"}


def test_batch_entries_stand_alone(http, base_url, unique):
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": {"resourceType": "Patient", "identifier": [{"system": "urn:e2e:bundle", "value": unique}]},
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Observation"}, "request": {"method": "POST", "url": "Observation"}},
            {"request": {"method": "GET", "url": f"Patient?identifier=urn:e2e:bundle|{unique}"}},
        ],
    }
    r = http.post(base_url, json=batch, headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    assert [e["response"]["status"][:3] for e in entries] == ["201", "400", "200"]
    assert entries[1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    # The batch ran its entries concurrently, so the search may or may not see the create; a
    # search now must.
    found = http.get(f"{base_url}/Patient", params={"identifier": f"urn:e2e:bundle|{unique}"}).json()
    assert len(found["entry"]) == 1


def active_write_transactions(db: str) -> int:
    """Backends of `db` inside a transaction that has written something (it has an xid)."""
    out = subprocess.run(
        ["psql", ADMIN_URL, "-tAc",
         f"select count(*) from pg_stat_activity where datname = '{db}' and backend_xid is not null"],
        capture_output=True, text=True, check=True,
    )
    return int(out.stdout.strip() or 0)


def test_a_server_killed_mid_transaction_leaves_nothing(solo_fhir):
    mrn = uuid.uuid4().hex
    bundle = patient_record(mrn, 450)
    # Searches run last, inside the transaction, after every write: they keep it open (and
    # uncommitted) long enough to be caught writing.
    bundle["entry"] += [
        {"request": {"method": "GET", "url": f"Observation?value-quantity=gt{v}&_total=accurate"}}
        for v in range(40)
    ]
    sent = threading.Thread(
        target=lambda: _post_ignoring_failure(solo_fhir.base, bundle), daemon=True
    )
    sent.start()
    seen_writing = False
    deadline = time.time() + 30
    while time.time() < deadline and not seen_writing:
        seen_writing = active_write_transactions(solo_fhir.db) > 0
    solo_fhir.kill()
    assert seen_writing, "the transaction was not seen writing"
    sent.join(timeout=30)
    solo_fhir.start()
    for query in [f"Patient?identifier=urn:e2e:bundle|{mrn}", "Observation?code=http://loinc.org|8867-4"]:
        r = requests.get(f"{solo_fhir.base}/{query}&_total=accurate")
        assert r.status_code == 200, r.text
        assert r.json()["total"] == 0, f"{query}: {r.text[:500]}"
    # The same Bundle, sent again to the restarted server, is written whole.
    bundle["entry"] = bundle["entry"][:451]
    r = requests.post(solo_fhir.base, json=bundle, headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 200, r.text[:500]
    r = requests.get(f"{solo_fhir.base}/Observation?code=http://loinc.org|8867-4&_total=accurate&_count=0")
    assert r.json()["total"] == 450


def _post_ignoring_failure(base: str, bundle: dict) -> None:
    try:
        requests.post(base, json=bundle, headers={"Content-Type": FHIR_JSON}, timeout=60)
    except requests.RequestException:
        pass  # the server is killed under it: that is the point
