"""Optimistic concurrency and history."""

import requests

from conftest import FHIR_JSON, assert_outcome, create, new_patient

JSON = {"Content-Type": FHIR_JSON}


def put(http, base_url, resource, **headers):
    return http.put(
        f"{base_url}/{resource['resourceType']}/{resource['id']}",
        json=resource,
        headers={**JSON, **headers},
    )


def test_if_match(http, base_url):
    p = create(http, base_url, new_patient())
    pid = p["id"]
    p["gender"] = "male"
    r = put(http, base_url, p)
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == 'W/"2"'

    # Stale version: 412, and nothing changes.
    p["gender"] = "other"
    stale = put(http, base_url, p, **{"If-Match": 'W/"1"'})
    assert_outcome(stale, 412)
    current = http.get(f"{base_url}/Patient/{pid}")
    assert current.json()["gender"] == "male"
    assert current.headers["ETag"] == 'W/"2"'

    # The right version: 200 and version 3.
    ok = put(http, base_url, p, **{"If-Match": 'W/"2"'})
    assert ok.status_code == 200, ok.text
    assert ok.headers["ETag"] == 'W/"3"'
    assert ok.json()["meta"]["versionId"] == "3"
    assert ok.json()["gender"] == "other"


def test_update_as_create_and_id_mismatch(http, base_url, unique):
    pid = f"e2e-{unique[:20]}"
    body = {"resourceType": "Patient", "id": pid, "name": [{"family": "Chosen"}]}
    r = http.put(f"{base_url}/Patient/{pid}", json=body, headers=JSON)
    assert r.status_code == 201, r.text
    assert r.headers["ETag"] == 'W/"1"'
    assert r.json()["id"] == pid
    assert f"/Patient/{pid}" in r.headers["Location"]

    other = {**body, "id": "someone-else"}
    assert_outcome(http.put(f"{base_url}/Patient/{pid}", json=other, headers=JSON), 400)


def test_prefer_return(http, base_url):
    body = new_patient()
    minimal = http.post(f"{base_url}/Patient", json=body, headers={**JSON, "Prefer": "return=minimal"})
    assert minimal.status_code == 201
    assert minimal.content == b""
    assert "/Patient/" in minimal.headers["Location"]
    assert minimal.headers["ETag"] == 'W/"1"'

    oo = http.post(f"{base_url}/Patient", json=body, headers={**JSON, "Prefer": "return=OperationOutcome"})
    assert oo.status_code == 201
    assert oo.json()["resourceType"] == "OperationOutcome"

    rep = http.post(f"{base_url}/Patient", json=body, headers={**JSON, "Prefer": "return=representation"})
    assert rep.status_code == 201
    assert rep.json()["resourceType"] == "Patient"


def test_create_response(http, base_url):
    r = http.post(f"{base_url}/Patient", json=new_patient(), headers=JSON)
    assert r.status_code == 201
    p = r.json()
    assert r.headers["ETag"] == 'W/"1"'
    assert r.headers["Location"].startswith(f"{base_url}/Patient/{p['id']}")
    assert p["meta"]["versionId"] == "1"
    assert p["meta"]["lastUpdated"]
    # A client-supplied id on create is ignored: the server assigns one.
    r2 = http.post(f"{base_url}/Patient", json={**new_patient(), "id": "client-chosen"}, headers=JSON)
    assert r2.status_code == 201
    assert r2.json()["id"] != "client-chosen"


def test_instance_history(http, base_url):
    p = create(http, base_url, new_patient(family="V1"))
    pid = p["id"]
    p["name"][0]["family"] = "V2"
    assert put(http, base_url, p).status_code == 200
    assert http.delete(f"{base_url}/Patient/{pid}").status_code == 204

    r = http.get(f"{base_url}/Patient/{pid}/_history")
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "history"
    assert bundle.get("total", 3) == 3
    entries = bundle["entry"]
    assert len(entries) == 3
    methods = [e["request"]["method"] for e in entries]
    assert methods == ["DELETE", "PUT", "POST"], methods
    # Newest first; the deleted version carries no resource.
    assert "resource" not in entries[0]
    assert entries[0]["request"]["url"].endswith(f"Patient/{pid}")
    assert entries[0]["response"]["status"].startswith("204") or entries[0]["response"]["status"].startswith("200")
    assert [e["resource"]["meta"]["versionId"] for e in entries[1:]] == ["2", "1"]
    assert entries[1]["resource"]["name"][0]["family"] == "V2"
    assert entries[2]["resource"]["name"][0]["family"] == "V1"
    assert entries[2]["response"]["status"].startswith("201")
    # The deleted version is version 3: vread of it is 410, earlier versions still readable.
    assert http.get(f"{base_url}/Patient/{pid}/_history/3").status_code == 410
    assert http.get(f"{base_url}/Patient/{pid}/_history/2").json()["name"][0]["family"] == "V2"
    assert_outcome(http.get(f"{base_url}/Patient/{pid}/_history/9"), 404)


def test_type_and_system_history_and_paging(http, base_url, unique):
    p = create(http, base_url, new_patient("urn:e2e:hist", unique))
    pid = p["id"]
    p["active"] = True
    assert put(http, base_url, p).status_code == 200

    type_hist = http.get(f"{base_url}/Patient/_history", params={"_count": 50}).json()
    assert type_hist["type"] == "history"
    ours = [e for e in type_hist["entry"] if e.get("resource", {}).get("id") == pid]
    assert [e["resource"]["meta"]["versionId"] for e in ours] == ["2", "1"]
    assert all(e["resource"]["resourceType"] == "Patient" for e in type_hist["entry"] if "resource" in e)

    system_hist = http.get(f"{base_url}/_history", params={"_count": 50}).json()
    assert system_hist["type"] == "history"
    assert any(e.get("resource", {}).get("id") == pid for e in system_hist["entry"])

    # _count=1 pages through the instance history with working next links.
    seen = []
    url = f"{base_url}/Patient/{pid}/_history?_count=1"
    for _ in range(5):
        page = http.get(url)
        assert page.status_code == 200, page.text
        bundle = page.json()
        assert len(bundle.get("entry", [])) <= 1
        seen += [e["resource"]["meta"]["versionId"] for e in bundle.get("entry", [])]
        nxt = [link["url"] for link in bundle.get("link", []) if link["relation"] == "next"]
        if not nxt:
            break
        assert "_cursor" in nxt[0]
        url = nxt[0]
    assert seen == ["2", "1"]


def test_history_since_and_at(http, base_url):
    p = create(http, base_url, new_patient(family="Before"))
    pid = p["id"]
    t1 = p["meta"]["lastUpdated"]
    p["name"][0]["family"] = "After"
    v2 = put(http, base_url, p).json()
    t2 = v2["meta"]["lastUpdated"]
    assert t2 >= t1

    since = http.get(f"{base_url}/Patient/{pid}/_history", params={"_since": t2}).json()
    assert [e["resource"]["meta"]["versionId"] for e in since.get("entry", [])] == ["2"]

    at = http.get(f"{base_url}/Patient/{pid}/_history", params={"_at": t1}).json()
    assert [e["resource"]["meta"]["versionId"] for e in at.get("entry", [])] == ["1"]


def test_no_version_resource_type_keeps_one_version(http, base_url):
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "heart rate"}}
    o = create(http, base_url, obs)
    o["status"] = "amended"
    r = put(http, base_url, o)
    assert r.status_code == 200, r.text
    hist = http.get(f"{base_url}/Observation/{o['id']}/_history").json()
    assert len(hist["entry"]) == 1
    assert hist["entry"][0]["resource"]["status"] == "amended"


def test_etag_if_none_match(http, base_url):
    p = create(http, base_url, new_patient())
    r = requests.get(f"{base_url}/Patient/{p['id']}", headers={"If-None-Match": 'W/"1"', **http.headers})
    assert r.status_code == 304
