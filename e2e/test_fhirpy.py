"""fhirpy (2.x, synchronous client) against the server."""

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound

from conftest import FHIR_JSON, assert_outcome, create, new_patient


@pytest.fixture(scope="module")
def fp(base_url, auth_headers):
    return SyncFHIRClient(base_url, authorization=auth_headers["Authorization"], extra_headers={"Accept": FHIR_JSON})


def test_save_creates_then_updates(fp, unique):
    system = "urn:e2e:fhirpy"
    patient = fp.resource(
        "Patient",
        identifier=[{"system": system, "value": unique}],
        name=[{"family": "Rivera", "given": ["Ana"]}],
        birthDate="1990-05-06",
    )
    patient.save()
    assert patient.id
    assert patient["meta"]["versionId"] == "1"
    pid = patient.id

    patient["name"] = [{"family": "Rivera", "given": ["Ana", "Maria"]}]
    patient["active"] = False
    patient.save()
    assert patient.id == pid
    assert patient["meta"]["versionId"] == "2"

    read = fp.reference("Patient", pid).to_resource()
    assert read.id == pid
    assert read["meta"]["versionId"] == "2"
    assert read["name"][0]["given"] == ["Ana", "Maria"]
    assert read["active"] is False
    assert read["birthDate"] == "1990-05-06"

    # refresh() sends If-None-Match with the current version: either 304 or the same data.
    read.refresh()
    assert read["meta"]["versionId"] == "2"

    found = fp.resources("Patient").search(identifier=f"{system}|{unique}").fetch_all()
    assert [r.id for r in found] == [pid]
    assert fp.resources("Patient").search(identifier=f"{system}|{unique}").count() == 1
    assert fp.resources("Patient").search(identifier=f"{system}|nobody-{unique}").fetch_all() == []
    assert fp.resources("Patient").search(_id=pid).first().id == pid


def test_search_by_identifier_value_only_and_system_only(fp, http, base_url, unique):
    a = create(http, base_url, new_patient("urn:e2e:sysA", unique))
    b = create(http, base_url, new_patient("urn:e2e:sysB", unique))
    both = fp.resources("Patient").search(identifier=unique).fetch_all()
    assert sorted(r.id for r in both) == sorted([a["id"], b["id"]])
    only_a = fp.resources("Patient").search(identifier=f"urn:e2e:sysA|{unique}").fetch_all()
    assert [r.id for r in only_a] == [a["id"]]
    r = http.get(f"{base_url}/Patient", params={"identifier": unique})
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    assert bundle["total"] == 2
    assert all(e["search"]["mode"] == "match" for e in bundle["entry"])
    assert all(e["fullUrl"].startswith(f"{base_url}/Patient/") for e in bundle["entry"])


def test_conditional_create_with_if_none_exist(fp, http, base_url, unique):
    query = f"identifier=urn:e2e:cond|{unique}"
    body = new_patient("urn:e2e:cond", unique)
    headers = {"Content-Type": FHIR_JSON, "If-None-Exist": query}

    first = http.post(f"{base_url}/Patient", json=body, headers=headers)
    assert first.status_code == 201, first.text
    pid = first.json()["id"]

    second = http.post(f"{base_url}/Patient", json=body, headers=headers)
    assert second.status_code == 200, second.text
    assert second.json()["id"] == pid
    assert second.json()["meta"]["versionId"] == "1"

    # Only one exists, as fhirpy's search confirms.
    found = fp.resources("Patient").search(identifier=f"urn:e2e:cond|{unique}").fetch_all()
    assert [r.id for r in found] == [pid]

    # Two matches: 412.
    create(http, base_url, new_patient("urn:e2e:cond", unique))
    third = http.post(f"{base_url}/Patient", json=body, headers=headers)
    assert_outcome(third, 412)


def test_conditional_update_and_delete_through_searchset(fp, http, base_url, unique):
    system = "urn:e2e:condupd"
    search = fp.resources("Patient").search(identifier=f"{system}|{unique}")

    # No match: the conditional update creates.
    p = fp.resource("Patient", identifier=[{"system": system, "value": unique}], name=[{"family": "One"}])
    created, was_created = search.update(p)
    assert was_created is True
    pid = created.id
    assert created["meta"]["versionId"] == "1"

    # One match: it updates that resource.
    p2 = fp.resource("Patient", identifier=[{"system": system, "value": unique}], name=[{"family": "Two"}])
    updated, was_created = search.update(p2)
    assert was_created is False
    assert updated.id == pid
    assert updated["meta"]["versionId"] == "2"
    assert fp.reference("Patient", pid).to_resource()["name"][0]["family"] == "Two"

    # Conditional delete.
    search.delete()
    assert http.get(f"{base_url}/Patient/{pid}").status_code == 410
    assert search.fetch_all() == []


def test_delete_then_read_is_gone(fp, http, base_url):
    patient = fp.resource("Patient", name=[{"family": "Temporary"}])
    patient.save()
    pid = patient.id
    patient.delete()

    with pytest.raises(ResourceNotFound):
        fp.reference("Patient", pid).to_resource()
    r = http.get(f"{base_url}/Patient/{pid}")
    body = assert_outcome(r, 410)
    assert body["issue"][0]["severity"] in ("error", "fatal")
    # Deleting again is idempotent.
    assert http.delete(f"{base_url}/Patient/{pid}").status_code in (200, 204)
    # Searches no longer find it.
    assert fp.resources("Patient").search(_id=pid).fetch_all() == []


def test_invalid_resource_raises_operation_outcome(fp):
    bad = fp.resource("Patient", birthDate="02/01/1980")
    with pytest.raises(OperationOutcome) as err:
        bad.save()
    issues = err.value.resource["issue"]
    assert any(x.startswith("Patient.birthDate") for i in issues for x in i.get("expression", [])), issues
