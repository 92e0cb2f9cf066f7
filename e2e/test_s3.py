"""Export to and import from S3-compatible storage (moto's S3 server, a real HTTP endpoint),
configured as an operator would: `s3://bucket/prefix` URLs and the usual `AWS_*` variables."""

from __future__ import annotations

import json

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from conftest import FHIR_JSON, SoloFhir, free_port
from test_export import kick_off, ndjson_ids, wait_done

BUCKET = "hds-e2e"


@pytest.fixture()
def s3():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    creds = {"AWS_ACCESS_KEY_ID": "e2e", "AWS_SECRET_ACCESS_KEY": "e2e-secret", "AWS_REGION": "us-east-1"}
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"], region_name=creds["AWS_REGION"])
    client.create_bucket(Bucket=BUCKET)
    yield client, {**creds, "AWS_ENDPOINT": endpoint, "AWS_ALLOW_HTTP": "true"}
    server.stop()


def keys(client, prefix: str) -> list[str]:
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def test_export_writes_to_s3_and_import_reads_from_it(tmp_path, s3):
    client, env = s3
    svc = SoloFhir(tmp_path, export_url=f"s3://{BUCKET}/exports", import_url=f"s3://{BUCKET}/imports", env=env)
    svc.start()
    try:
        made = set()
        for i in range(5):
            r = requests.post(f"{svc.base}/Patient", json={"resourceType": "Patient", "name": [{"family": f"S3n{i}"}]},
                              headers={"Content-Type": FHIR_JSON})
            assert r.status_code == 201, r.text
            made.add(f"Patient/{r.json()['id']}")

        manifest = wait_done(kick_off(svc.base, "Patient/$export"))
        assert set(ndjson_ids(manifest)) == made
        job = manifest["output"][0]["url"].split("/_operations/export/")[1].split("/")[0]
        stored = keys(client, f"exports/{job}/")
        assert stored == [f"exports/{job}/Patient-0001.ndjson"], stored
        body = client.get_object(Bucket=BUCKET, Key=stored[0])["Body"].read().decode()
        assert {f"Patient/{json.loads(line)['id']}" for line in body.splitlines()} == made

        lines = [json.dumps({"resourceType": "Observation", "id": f"s3-obs-{i}", "status": "final",
                             "code": {"text": "from s3"}}) for i in range(3)] + ["{broken"]
        client.put_object(Bucket=BUCKET, Key="imports/batch/obs.ndjson", Body="\n".join(lines).encode())
        r = requests.post(f"{svc.base}/$import", headers={"Prefer": "respond-async", "Content-Type": FHIR_JSON}, json={
            "resourceType": "Parameters", "parameter": [
                {"name": "inputFormat", "valueString": "application/fhir+ndjson"},
                {"name": "mode", "valueString": "IncrementalLoad"},
                {"name": "input", "part": [{"name": "type", "valueString": "Observation"},
                                           {"name": "url", "valueUri": f"s3://{BUCKET}/imports/batch/obs.ndjson"}]},
            ]})
        assert r.status_code == 202, r.text
        result = wait_done(r.headers["Content-Location"])
        assert result["output"][0]["count"] == 3
        assert result["error"][0]["count"] == 1
        for i in range(3):
            assert requests.get(f"{svc.base}/Observation/s3-obs-{i}").status_code == 200
        # Outside the bucket prefix the service was given: refused before any job starts.
        r = requests.post(f"{svc.base}/$import", headers={"Prefer": "respond-async", "Content-Type": FHIR_JSON}, json={
            "resourceType": "Parameters", "parameter": [
                {"name": "input", "part": [{"name": "url", "valueUri": f"s3://{BUCKET}/exports/{job}/Patient-0001.ndjson"}]},
            ]})
        assert r.status_code == 400, r.text
    finally:
        svc.close()
