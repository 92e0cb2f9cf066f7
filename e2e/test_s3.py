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

        # A file of several 5 MiB parts (a multipart upload of three) arrives whole and in order.
        large = {}
        for i in range(40):
            text = f"{i:03}-" + "y" * 300_000
            r = requests.post(f"{svc.base}/Basic", json={"resourceType": "Basic", "code": {"text": text}},
                              headers={"Content-Type": FHIR_JSON})
            assert r.status_code == 201, r.text
            large[r.json()["id"]] = text
        manifest = wait_done(kick_off(svc.base, "$export?_type=Basic"))
        assert [f["count"] for f in manifest["output"]] == [40], manifest
        job = manifest["output"][0]["url"].split("/_operations/export/")[1].split("/")[0]
        assert keys(client, f"exports/{job}/") == [f"exports/{job}/Basic-0001.ndjson"]
        body = client.get_object(Bucket=BUCKET, Key=f"exports/{job}/Basic-0001.ndjson")["Body"].read()
        assert len(body) > 10 << 20  # three parts of 5 MiB
        got = {(r := json.loads(line))["id"]: r["code"]["text"] for line in body.decode().splitlines()}
        assert got == large

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


def test_dicom_instances_live_in_s3(tmp_path, s3):
    """`hds dicom` with `storage.url: s3://...`: STOW writes the file there, WADO reads it back
    byte for byte, DELETE removes it."""
    import io
    import os
    import signal
    import subprocess
    import time
    import uuid

    import pydicom
    from pydicom.data import get_testdata_file

    from conftest import ADMIN_URL, find_binary

    client, env = s3
    db = f"hds_test_{uuid.uuid4().hex}"
    subprocess.run(["psql", ADMIN_URL, "-qc", f'create database "{db}"'], check=True)
    server, _ = ADMIN_URL.rsplit("/", 1)
    port = free_port()
    config = tmp_path / "dicom.yaml"
    config.write_text(
        "name: s3dicom\n"
        f"postgres: {{url: \"{server}/{db}\"}}\n"
        "auth: {mode: none}\n"
        f"storage: {{url: \"s3://{BUCKET}/dicom\"}}\n"
    )
    log = open(tmp_path / "dicom.log", "wb")
    proc = subprocess.Popen([str(find_binary()), "dicom", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
                            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if requests.get(f"{base}/health/check", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        data = open(get_testdata_file("CT_small.dcm"), "rb").read()
        ds = pydicom.dcmread(io.BytesIO(data))
        r = requests.post(f"{base}/studies", data=data, headers={"Content-Type": "application/dicom"})
        assert r.status_code == 200, r.text
        listed = keys(client, "dicom/")
        # Besides the instance: the service's marker, which keeps another service's orphan
        # sweep out of this store.
        stored = [k for k in listed if k.endswith(".dcm")]
        assert len(stored) == 1 and len(listed) == 2, listed
        assert any("hds-dicom-services" in k for k in listed), listed
        assert client.get_object(Bucket=BUCKET, Key=stored[0])["Body"].read() == data
        url = f"{base}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
        r = requests.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"})
        assert r.status_code == 200 and r.content == data
        assert requests.delete(f"{base}/studies/{ds.StudyInstanceUID}").status_code == 204
        assert [k for k in keys(client, "dicom/") if k.endswith(".dcm")] == []
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()
