"""Every error is an OperationOutcome with the right status."""

import pytest

from conftest import FHIR_JSON, assert_outcome, create, new_patient

JSON = {"Content-Type": FHIR_JSON}


def expressions(body):
    return [x for issue in body["issue"] for x in issue.get("expression", [])]


@pytest.mark.parametrize(
    "patch, element",
    [
        pytest.param({"foo": 1}, "Patient.foo", id="unknown-element"),
        pytest.param({"birthDate": "not-a-date"}, "Patient.birthDate", id="bad-date"),
        pytest.param({"gender": "robot"}, "Patient.gender", id="required-binding-code"),
        pytest.param({"active": "yes"}, "Patient.active", id="string-for-boolean"),
        pytest.param({"name": [{"family": 42}]}, "Patient.name", id="number-for-string"),
    ],
)
def test_invalid_resource_is_400_naming_the_element(http, base_url, patch, element):
    body = {"resourceType": "Patient", **patch}
    r = http.post(f"{base_url}/Patient", json=body, headers=JSON)
    oo = assert_outcome(r, 400)
    assert any(x.startswith(element) for x in expressions(oo)), oo
    assert all(i["severity"] in ("error", "fatal") for i in oo["issue"])


def test_invalid_update_is_400_and_does_not_change_the_resource(http, base_url):
    p = create(http, base_url, new_patient())
    bad = {**p, "birthDate": "1980-13-45"}
    oo = assert_outcome(http.put(f"{base_url}/Patient/{p['id']}", json=bad, headers=JSON), 400)
    assert any(x.startswith("Patient.birthDate") for x in expressions(oo)), oo
    assert http.get(f"{base_url}/Patient/{p['id']}").json()["meta"]["versionId"] == "1"


def test_format_xml_is_406(http, base_url):
    assert_outcome(http.get(f"{base_url}/Patient", params={"_format": "xml"}), 406)
    assert_outcome(http.get(f"{base_url}/metadata", params={"_format": "application/fhir+xml"}), 406)


def test_xml_accept_is_406(http, base_url):
    r = http.get(f"{base_url}/metadata", headers={"Accept": "application/fhir+xml"})
    assert r.status_code == 406, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


def test_xml_body_is_415(http, base_url):
    r = http.post(
        f"{base_url}/Patient",
        data='<Patient xmlns="http://hl7.org/fhir"><active value="true"/></Patient>',
        headers={"Content-Type": "application/fhir+xml"},
    )
    assert_outcome(r, 415)


def test_unknown_type_is_404(http, base_url):
    assert_outcome(http.get(f"{base_url}/NotAType/1"), 404)
    assert_outcome(http.get(f"{base_url}/NotAType"), 404)
    assert_outcome(http.post(f"{base_url}/NotAType", json={"resourceType": "NotAType"}, headers=JSON), 404)


def test_unknown_id_is_404(http, base_url):
    assert_outcome(http.get(f"{base_url}/Patient/no-such-patient"), 404)


def test_resource_type_mismatch_is_400(http, base_url):
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    assert_outcome(http.post(f"{base_url}/Patient", json=obs, headers=JSON), 400)
    p = create(http, base_url, new_patient())
    assert_outcome(http.put(f"{base_url}/Observation/{p['id']}", json=p, headers=JSON), 400)


def test_malformed_json_is_400(http, base_url):
    r = http.post(f"{base_url}/Patient", data='{"resourceType": "Patient",', headers=JSON)
    assert_outcome(r, 400)
    r = http.post(f"{base_url}/Patient", data="[1, 2, 3]", headers=JSON)
    assert_outcome(r, 400)


def test_missing_resource_type_is_400(http, base_url):
    assert_outcome(http.post(f"{base_url}/Patient", json={"active": True}, headers=JSON), 400)


def test_unsupported_search_parameter_is_reported(http, base_url):
    # Strict handling rejects it; lenient handling ignores it and says so in an outcome entry.
    r = http.get(f"{base_url}/Patient", params={"name-not-a-param": "x"}, headers={"Prefer": "handling=strict"})
    assert r.status_code == 400, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
