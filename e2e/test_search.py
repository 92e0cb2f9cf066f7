"""Search through the real clients: fhirpy's query builder and fhirclient's FHIRSearch, against
`hds up`. Each test works on resources tagged with its own unique value, so tests sharing the
server do not see each other's data."""

import pytest
from fhirclient import client as fc_client
from fhirclient.models.observation import Observation as FcObservation
from fhirpy import SyncFHIRClient

from conftest import FHIR_JSON, assert_outcome, create


@pytest.fixture(scope="module")
def fp(base_url, auth_headers):
    return SyncFHIRClient(base_url, authorization=auth_headers["Authorization"], extra_headers={"Accept": FHIR_JSON})


def seed(http, base_url, unique):
    """Two patients, three observations; all carry identifier/code values made unique."""
    ana = create(http, base_url, {
        "resourceType": "Patient", "identifier": [{"system": "urn:e2e:search", "value": unique}],
        "name": [{"family": f"Zé{unique}", "given": ["Ana"]}], "gender": "female",
        "birthDate": "1980-02-03"})
    bob = create(http, base_url, {
        "resourceType": "Patient", "identifier": [{"system": "urn:e2e:search", "value": unique}],
        "name": [{"family": f"Ze{unique}x", "given": ["Bob"]}], "gender": "male",
        "birthDate": "1991-07-08"})
    obs = []
    for subject, value, date in [(ana, 70.5, "2024-01-10"), (ana, 72.0, "2024-03-01"), (bob, 90.0, "2024-02-15")]:
        obs.append(create(http, base_url, {
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "urn:e2e:code", "code": unique}]},
            "subject": {"reference": f"Patient/{subject['id']}"},
            "effectiveDateTime": date,
            "valueQuantity": {"value": value, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}))
    return ana, bob, obs


def test_fhirpy_search_features(fp, http, base_url, unique):
    ana, bob, obs = seed(http, base_url, unique)
    code = f"urn:e2e:code|{unique}"
    # String search folds case and accents: "ze" finds "Zé…".
    both = fp.resources("Patient").search(family=f"ze{unique}").fetch_all()
    assert sorted(p.id for p in both) == sorted([ana["id"], bob["id"]])
    # Dates with prefixes, AND by repetition.
    born = fp.resources("Patient").search(identifier=f"urn:e2e:search|{unique}", birthdate__ge="1985").fetch_all()
    assert [p.id for p in born] == [bob["id"]]
    # Quantity and date on observations.
    heavy = fp.resources("Observation").search(code=code, **{"value-quantity": "gt71"}).fetch_all()
    assert sorted(o.id for o in heavy) == sorted([obs[1]["id"], obs[2]["id"]])
    feb = fp.resources("Observation").search(code=code, date__ge="2024-02-01", date__lt="2024-03-01").fetch_all()
    assert [o.id for o in feb] == [obs[2]["id"]]
    # Chained and reverse-chained search.
    anas = fp.resources("Observation").search(code=code, **{"subject:Patient.given": "ana"}).fetch_all()
    assert sorted(o.id for o in anas) == sorted([obs[0]["id"], obs[1]["id"]])
    has = fp.resources("Patient").search(**{"_has:Observation:subject:value-quantity": "gt80"},
                                         identifier=f"urn:e2e:search|{unique}").fetch_all()
    assert [p.id for p in has] == [bob["id"]]
    # Sorting, paging and include.
    ordered = fp.resources("Observation").search(code=code).sort("-date").limit(1).fetch_all()
    assert [o.id for o in ordered] == [obs[1]["id"], obs[2]["id"], obs[0]["id"]]
    bundle = http.get(f"{base_url}/Observation", params={
        "code": code, "subject": f"Patient/{ana['id']}", "_include": "Observation:subject"}).json()
    modes = sorted((e["search"]["mode"], e["resource"]["resourceType"]) for e in bundle["entry"])
    assert modes == [("include", "Patient"), ("match", "Observation"), ("match", "Observation")]
    # Compartment search.
    in_compartment = http.get(f"{base_url}/Patient/{bob['id']}/Observation").json()
    assert [e["resource"]["id"] for e in in_compartment["entry"]] == [obs[2]["id"]]
    assert fp.resources("Observation").search(code=code).count() == 3


def test_full_text_units_lists_and_system_search(fp, http, base_url, unique):
    ana, bob, obs = seed(http, base_url, unique)
    # _content: every string of the resource, here the unique family name.
    found = fp.resources("Patient").search(_content=f"ze{unique}").fetch_all()
    assert [p.id for p in found] == [ana["id"]]
    # UCUM canonical comparison: the 72 kg weight, asked for in grams.
    grams = fp.resources("Observation").search(
        code=f"urn:e2e:code|{unique}", **{"value-quantity": "72000|http://unitsofmeasure.org|g"}).fetch_all()
    assert [o.id for o in grams] == [obs[1]["id"]]
    # _list: the items of a List.
    lst = create(http, base_url, {"resourceType": "List", "status": "current", "mode": "working",
                                  "entry": [{"item": {"reference": f"Patient/{bob['id']}"}}]})
    listed = fp.resources("Patient").search(_list=lst["id"]).fetch_all()
    assert [p.id for p in listed] == [bob["id"]]
    # System search over two types with a shared parameter.
    bundle = http.get(base_url, params={"_type": "Patient,List", "_id": f"{bob['id']},{lst['id']}"}).json()
    assert sorted(e["resource"]["resourceType"] for e in bundle["entry"]) == ["List", "Patient"]
    assert_outcome(http.get(base_url, params={"_type": "Patient,List", "family": "x"}), 400)


def test_fhirclient_search(base_url, http, unique):
    _, bob, obs = seed(http, base_url, unique)
    smart = fc_client.FHIRClient(settings={"app_id": "hds-e2e", "api_base": base_url})
    smart.server.session.headers.update(http.headers)
    search = FcObservation.where(struct={"code": f"urn:e2e:code|{unique}", "subject": f"Patient/{bob['id']}"})
    found = list(search.perform_resources_iter(smart.server))
    assert [o.id for o in found] == [obs[2]["id"]]
    assert found[0].valueQuantity.value == 90.0


def test_bad_searches_are_operation_outcomes(http, base_url):
    for params in [{"birthdate": "not-a-date"}, {"gender.name": "x"}, {"_sort": "nonexistent"}]:
        assert_outcome(http.get(f"{base_url}/Patient", params=params), 400)
    strict = http.get(f"{base_url}/Patient", params={"nonsense": "1"}, headers={"Prefer": "handling=strict"})
    assert_outcome(strict, 400)
