"""`$validate` against a profile uploaded as a StructureDefinition, and Azure's `$bulk-delete`,
on `hds up -f examples/` with the dev client's token (FHIR Data Contributor)."""

from __future__ import annotations

import time

from fhirpy import SyncFHIRClient

from conftest import create


def profile(url: str) -> dict:
    return {
        "resourceType": "StructureDefinition", "url": url, "name": "E2ePatient", "status": "active",
        "kind": "resource", "abstract": False, "type": "Patient", "derivation": "constraint",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "differential": {"element": [
            {"id": "Patient", "path": "Patient"},
            {"id": "Patient.identifier", "path": "Patient.identifier", "min": 1},
            {"id": "Patient.gender", "path": "Patient.gender", "min": 1, "fixedCode": "female"},
        ]},
    }


def test_validate_against_an_uploaded_profile(http, base_url, token, unique):
    url = f"http://example.org/e2e/{unique}"
    create(http, base_url, profile(url))
    client = SyncFHIRClient(base_url, authorization=f"Bearer {token}")
    good = {"resourceType": "Patient", "identifier": [{"value": "1"}], "gender": "female"}
    outcome = client.execute("Patient/$validate", method="post", data=good, params={"profile": url})
    assert [i["severity"] for i in outcome["issue"]] == ["information"], outcome
    bad = {"resourceType": "Patient", "gender": "male", "meta": {"profile": [url]}}
    outcome = client.execute("Patient/$validate", method="post", data=bad)
    found = {(i["severity"], i["code"], i["expression"][0]) for i in outcome["issue"]}
    assert ("error", "required", "Patient.identifier") in found, outcome
    assert ("error", "value", "Patient.gender") in found, outcome
    # A profile that is not stored, asked for by name, is an error of its own.
    outcome = client.execute("Patient/$validate", method="post", data=good,
                             params={"profile": "http://example.org/nowhere"})
    assert any(i["code"] == "not-found" and i["severity"] == "error" for i in outcome["issue"]), outcome


def test_bulk_delete_by_tag(http, base_url, unique):
    tag = {"system": "urn:e2e-bulk", "code": unique}
    made = []
    for body in ({"resourceType": "Patient"}, {"resourceType": "Patient"},
                 {"resourceType": "Basic", "code": {"text": "x"}}):
        made.append(create(http, base_url, {**body, "meta": {"tag": [tag]}}))
    r = http.delete(f"{base_url}/$bulk-delete", params={"_tag": f"urn:e2e-bulk|{unique}"},
                    headers={"Prefer": "respond-async"})
    assert r.status_code == 202, r.text
    status = r.headers["Content-Location"]
    deadline = time.time() + 30
    while True:
        r = http.get(status)
        if r.status_code == 200:
            break
        assert r.status_code == 202 and time.time() < deadline, r.text
        time.sleep(0.1)
    counts = {p["name"]: p["valueDecimal"] for p in r.json()["parameter"][0]["part"]}
    assert counts == {"Basic": 1, "Patient": 2}
    for m in made:
        assert http.get(f"{base_url}/{m['resourceType']}/{m['id']}").status_code == 410
    # The soft delete keeps history: the version and the deletion.
    history = http.get(f"{base_url}/Patient/{made[0]['id']}/_history").json()
    assert len(history["entry"]) == 2
