"""PATCH: JSON Patch and FHIRPath Patch."""

from conftest import FHIR_JSON, assert_outcome, create, new_patient


def test_json_patch(http, base_url):
    p = create(http, base_url, new_patient(family="Before"))
    ops = [
        {"op": "replace", "path": "/name/0/family", "value": "After"},
        {"op": "add", "path": "/active", "value": True},
        {"op": "remove", "path": "/birthDate"},
    ]
    r = http.patch(
        f"{base_url}/Patient/{p['id']}", json=ops, headers={"Content-Type": "application/json-patch+json"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == 'W/"2"'
    body = r.json()
    assert body["meta"]["versionId"] == "2"
    assert body["name"][0]["family"] == "After"
    assert body["active"] is True
    assert "birthDate" not in body

    read = http.get(f"{base_url}/Patient/{p['id']}").json()
    assert read["name"][0]["family"] == "After"
    assert read["meta"]["versionId"] == "2"


def test_json_patch_test_op_failure_and_invalid_result(http, base_url):
    p = create(http, base_url, new_patient(family="Same"))
    headers = {"Content-Type": "application/json-patch+json"}
    failing = [{"op": "test", "path": "/name/0/family", "value": "Different"}]
    r = http.patch(f"{base_url}/Patient/{p['id']}", json=failing, headers=headers)
    assert r.status_code in (400, 409, 412, 422), r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    # A patch whose result is not a valid Patient is rejected (the spec's status for that is 422).
    invalid = [{"op": "add", "path": "/birthDate", "value": "yesterday"}]
    r = http.patch(f"{base_url}/Patient/{p['id']}", json=invalid, headers=headers)
    assert r.status_code in (400, 422), r.text
    oo = r.json()
    assert oo["resourceType"] == "OperationOutcome"
    assert any(x.startswith("Patient.birthDate") for i in oo["issue"] for x in i.get("expression", [])), oo
    assert http.get(f"{base_url}/Patient/{p['id']}").json()["meta"]["versionId"] == "1"


def test_fhirpath_patch(http, base_url):
    p = create(http, base_url, new_patient(family="Before"))
    params = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "replace"},
                    {"name": "path", "valueString": "Patient.birthDate"},
                    {"name": "value", "valueDate": "2001-02-03"},
                ],
            },
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "add"},
                    {"name": "path", "valueString": "Patient"},
                    {"name": "name", "valueString": "active"},
                    {"name": "value", "valueBoolean": False},
                ],
            },
        ],
    }
    r = http.patch(f"{base_url}/Patient/{p['id']}", json=params, headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == 'W/"2"'
    body = r.json()
    assert body["birthDate"] == "2001-02-03"
    assert body["active"] is False
    assert body["name"][0]["family"] == "Before"

    read = http.get(f"{base_url}/Patient/{p['id']}").json()
    assert read["birthDate"] == "2001-02-03"
    assert read["meta"]["versionId"] == "2"


def test_patch_with_stale_if_match_is_412(http, base_url):
    p = create(http, base_url, new_patient())
    ops = [{"op": "add", "path": "/active", "value": True}]
    headers = {"Content-Type": "application/json-patch+json"}
    assert http.patch(f"{base_url}/Patient/{p['id']}", json=ops, headers=headers).status_code == 200
    stale = http.patch(f"{base_url}/Patient/{p['id']}", json=ops, headers={**headers, "If-Match": 'W/"1"'})
    assert_outcome(stale, 412)

