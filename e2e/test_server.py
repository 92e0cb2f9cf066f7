"""The process itself: endpoints file, health probe, capability statement."""

import requests

from conftest import FHIR_JSON, assert_outcome


def test_endpoints_file_describes_the_example_services(hds_server):
    by_kind = {s["kind"]: s for s in hds_server.endpoints["services"]}
    assert sorted(by_kind) == ["DicomService", "FhirService", "MedTechService"]
    svc = by_kind["FhirService"]
    assert svc["name"] == "fhir"
    assert svc["namespace"] == "default"
    assert svc["workspace"] == "demo"
    assert svc["url"] == f"http://{hds_server.listen}/fhir/fhir"
    assert by_kind["DicomService"]["url"] == f"http://{hds_server.listen}/dicom/dicom"
    assert by_kind["MedTechService"]["url"] == f"http://{hds_server.listen}/medtech/vitals"
    assert by_kind["MedTechService"]["mqtt"].startswith("mqtt://127.0.0.1:")


def test_health_check(hds_server):
    r = requests.get(f"http://{hds_server.listen}/health/check", timeout=10)
    assert r.status_code == 200, r.text


def test_metadata_is_an_r4_capability_statement(base_url, http):
    r = http.get(f"{base_url}/metadata")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith(FHIR_JSON)
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.0.1"
    assert "json" in " ".join(cs.get("format", []))
    (rest,) = [x for x in cs["rest"] if x["mode"] == "server"]
    by_type = {res["type"]: res for res in rest["resource"]}
    assert "Patient" in by_type
    interactions = {i["code"] for i in by_type["Patient"]["interaction"]}
    for code in ("read", "vread", "update", "delete", "create", "history-instance"):
        assert code in interactions, f"Patient lacks '{code}': {sorted(interactions)}"
    assert by_type["Patient"].get("versioning") in ("versioned", "versioned-update")
    # The example overrides Observation to no-version.
    assert by_type["Observation"].get("versioning") == "no-version"


def test_method_not_allowed_is_an_operation_outcome(base_url, http):
    assert_outcome(http.delete(f"{base_url}/metadata"), 405)
