"""`$export` driven over HTTP as a Bulk Data client does it, and an export that outlives the
server running it: killed mid-job, restarted, it finishes with every resource exactly once."""

from __future__ import annotations

import json
import time
import uuid

import requests

from conftest import FHIR_JSON, SoloFhir


def kick_off(base: str, path: str = "$export") -> str:
    r = requests.get(f"{base}/{path}", headers={"Prefer": "respond-async", "Accept": FHIR_JSON})
    assert r.status_code == 202, r.text
    return r.headers["Content-Location"]


def wait_done(status_url: str, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = requests.get(status_url)
        if r.status_code == 200:
            return r.json()
        assert r.status_code == 202, r.text
        assert "X-Progress" in r.headers
        time.sleep(0.1)
    raise AssertionError(f"{status_url} did not finish in {timeout} s")


def ndjson_ids(manifest: dict) -> list[str]:
    ids = []
    for f in manifest["output"]:
        r = requests.get(f["url"])
        assert r.status_code == 200
        lines = r.text.splitlines()
        assert len(lines) == f["count"]
        ids += [f"{f['type']}/{json.loads(line)['id']}" for line in lines]
    return ids


def load(base: str, observations: int) -> set[str]:
    p = f"urn:uuid:{uuid.uuid4()}"
    entries = [{"fullUrl": p, "resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}]
    entries += [
        {
            "resource": {"resourceType": "Observation", "status": "final", "code": {"text": f"n{i}"},
                         "subject": {"reference": p}},
            "request": {"method": "POST", "url": "Observation"},
        }
        for i in range(observations)
    ]
    r = requests.post(base, json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
                      headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 200, r.text[:500]
    return {e["response"]["location"].split("/_history/")[0].split("/", 3)[-1] for e in r.json()["entry"]}


def test_an_export_resumes_after_its_server_is_killed(tmp_path):
    # Small files, so the job is many files long and can be caught in the middle.
    svc = SoloFhir(tmp_path, export_options="maxFileBytes: 1500, ")
    svc.start()
    try:
        want = set()
        for _ in range(3):
            want |= load(svc.base, 300)
        status = kick_off(svc.base)
        caught = None
        deadline = time.time() + 60
        while time.time() < deadline:
            r = requests.get(status)
            if r.status_code == 200:
                break
            progress = r.headers.get("X-Progress", "")
            if not progress.startswith("0 ") and "running" in progress:
                caught = progress
                break
            time.sleep(0.01)
        assert caught, "the export was not caught running with files written"
        svc.kill()
        # What a server killed in the middle of a file leaves: object_store's staging file.
        job_dir = tmp_path / "exports" / status.rstrip("/").rsplit("/", 1)[1]
        (job_dir / "Observation-9999.ndjson#1").write_text("{\"resourceType\": \"Obs")
        svc.start()
        manifest = wait_done(status)
        got = ndjson_ids(manifest)
        assert len(got) == len(set(got)), "a resource was exported twice"
        assert set(got) == want
        assert len(manifest["output"]) > 10
        # Nor is a file the killed server was writing left behind.
        assert [p.name for p in (tmp_path / "exports").rglob("*#*")] == []
    finally:
        svc.close()


def test_a_patient_list_export_survives_a_restart_and_downloads_as_ndjson(tmp_path):
    """The IG's `patient` parameter (POST only): only that Patient's compartment is exported,
    also when the server dies right after the kick-off and the job resumes from its record;
    the files download with the IG's default Accept, application/fhir+ndjson."""
    svc = SoloFhir(tmp_path, export_options="maxFileBytes: 1500, ")
    svc.start()
    try:
        wanted = load(svc.base, 200)
        others = load(svc.base, 200)
        patient = next(i for i in wanted if i.startswith("Patient/"))
        r = requests.post(
            f"{svc.base}/Patient/$export",
            json={"resourceType": "Parameters", "parameter": [
                {"name": "patient", "valueReference": {"reference": patient}}]},
            headers={"Prefer": "respond-async", "Content-Type": FHIR_JSON},
        )
        assert r.status_code == 202, r.text
        status = r.headers["Content-Location"]
        svc.kill()
        svc.start()
        manifest = wait_done(status)
        assert manifest["error"] == []
        got = []
        for f in manifest["output"]:
            r = requests.get(f["url"], headers={"Accept": "application/fhir+ndjson"})
            assert r.status_code == 200, r.text
            assert r.headers["Content-Type"] == "application/fhir+ndjson"
            got += [f"{f['type']}/{json.loads(line)['id']}" for line in r.text.splitlines()]
        assert len(got) == len(set(got)), "a resource was exported twice"
        assert set(got) == wanted
        assert not set(got) & others

        # Not in the URL, and not left unreported when unsupported.
        r = requests.get(f"{svc.base}/Patient/$export?patient={patient}", headers={"Prefer": "respond-async"})
        assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
        r = requests.get(f"{svc.base}/$export?_elements=id", headers={"Prefer": "respond-async"})
        assert r.status_code == 400 and r.json()["issue"][0]["code"] == "not-supported"
    finally:
        svc.close()
