"""SMART's `fhirclient` (4.x) against the server."""

import pytest
from fhirclient import client
from fhirclient.models.humanname import HumanName
from fhirclient.models.identifier import Identifier
from fhirclient.models.patient import Patient
from fhirclient.server import FHIRNotFoundException

from conftest import FHIR_JSON


@pytest.fixture(scope="module")
def smart(base_url, auth_headers):
    c = client.FHIRClient(settings={"app_id": "hds-e2e", "api_base": base_url})
    c.server.session.headers.update(auth_headers)
    return c.server


def test_create_read_update_vread(smart, base_url, http, unique):
    p = Patient(
        {
            "identifier": [{"system": "urn:e2e:fhirclient", "value": unique}],
            "name": [{"family": "Chalmers", "given": ["Peter"]}],
            "gender": "male",
            "birthDate": "1974-12-25",
            "active": True,
        }
    )
    created = p.create(smart)
    assert created["resourceType"] == "Patient"
    pid = created["id"]
    assert pid
    assert created["meta"]["versionId"] == "1"

    read = Patient.read(pid, smart)
    assert read.id == pid
    assert read.name[0].family == "Chalmers"
    assert read.name[0].given == ["Peter"]
    assert read.birthDate.isostring == "1974-12-25"
    assert read.identifier[0].value == unique
    assert read.meta.versionId == "1"

    name = HumanName()
    name.family = "Chalmers-Smith"
    name.given = ["Pete"]
    read.name = [name]
    read.gender = "other"
    extra = Identifier()
    extra.system = "urn:e2e:fhirclient:mrn"
    extra.value = "MRN-" + unique
    read.identifier.append(extra)
    updated = read.update(smart)
    assert updated["id"] == pid
    assert updated["meta"]["versionId"] == "2"

    again = Patient.read(pid, smart)
    assert again.meta.versionId == "2"
    assert again.name[0].family == "Chalmers-Smith"
    assert again.name[0].given == ["Pete"]
    assert again.gender == "other"
    assert [i.value for i in again.identifier] == [unique, "MRN-" + unique]

    # vread of version 1 through the client's own request helper...
    v1 = Patient.read_from(f"Patient/{pid}/_history/1", smart)
    assert v1.id == pid
    assert v1.meta.versionId == "1"
    assert v1.name[0].family == "Chalmers"
    assert v1.gender == "male"
    # ...and through plain HTTP, with the version's ETag.
    r = http.get(f"{base_url}/Patient/{pid}/_history/1")
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == 'W/"1"'
    assert r.headers["Content-Type"].startswith(FHIR_JSON)
    assert r.json()["name"][0]["family"] == "Chalmers"


def test_read_unknown_raises_not_found(smart):
    with pytest.raises(FHIRNotFoundException):
        Patient.read("does-not-exist-" + "0" * 8, smart)


def test_delete(smart, http, base_url):
    p = Patient({"name": [{"family": "Gone"}]})
    pid = p.create(smart)["id"]
    Patient.read(pid, smart).delete(smart)
    r = http.get(f"{base_url}/Patient/{pid}")
    assert r.status_code == 410, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
