"""Bulk import, both ways: `hds import` (the CLI, through the API) and `$import` (Azure's
async operation, from the service's import storage). What one server exports, another empty
one imports, and the two then hold the same resources (through `$import`, with the same
versionId and lastUpdated). The CLI reports a bad line by file and
line number, goes on, and resumes where a killed run stopped."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import requests

from conftest import FHIR_JSON, SoloFhir, find_binary
from test_export import kick_off, wait_done


def seed(base: str, patients: int, observations_each: int) -> None:
    entries = []
    for i in range(patients):
        p = f"urn:uuid:{uuid.uuid4()}"
        entries.append({
            "fullUrl": p,
            "resource": {"resourceType": "Patient", "name": [{"family": f"Round{i}", "given": ["Trip"]}],
                         "birthDate": "1970-01-0" + str(1 + i % 9), "gender": "female"},
            "request": {"method": "POST", "url": "Patient"},
        })
        for j in range(observations_each):
            entries.append({
                "resource": {
                    "resourceType": "Observation", "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "valueQuantity": {"value": 72.50, "unit": "/min"},
                    "subject": {"reference": p},
                },
                "request": {"method": "POST", "url": "Observation"},
            })
    r = requests.post(base, json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
                      headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 200, r.text[:500]


def holdings(base: str, keep_meta: bool = False) -> dict[str, dict]:
    """Every current resource of the server, by Type/id; without its meta unless asked (writes
    through the API get a new one)."""
    out = {}
    for rt in ("Patient", "Observation"):
        url = f"{base}/{rt}?_count=500"
        while url:
            b = requests.get(url).json()
            for e in b.get("entry", []):
                r = e["resource"]
                if not keep_meta:
                    r.pop("meta", None)
                out[f"{rt}/{r['id']}"] = r
            url = next((link["url"] for link in b.get("link", []) if link["relation"] == "next"), None)
    return out


def export_to(src: SoloFhir, folder: Path) -> list[tuple[str, Path]]:
    manifest = wait_done(kick_off(src.base))
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for n, f in enumerate(manifest["output"]):
        path = folder / f"{n:03}-{f['type']}.ndjson"
        path.write_bytes(requests.get(f["url"]).content)
        files.append((f["type"], path))
    return files


def run_import(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(find_binary()), "import", "--quiet", *args], capture_output=True, text=True,
                          timeout=300, **kw)


def test_what_one_server_exports_an_empty_one_imports(tmp_path):
    src, by_cli, by_op = SoloFhir(tmp_path / "src"), SoloFhir(tmp_path / "cli"), SoloFhir(tmp_path / "op")
    try:
        for s in (src, by_cli, by_op):
            s.start()
        seed(src.base, 40, 5)
        want = holdings(src.base)
        want_with_meta = holdings(src.base, keep_meta=True)
        assert len(want) == 240
        files = export_to(src, tmp_path / "export")

        # The CLI, through the API.
        done = run_import(str(tmp_path / "export"), "--server", by_cli.base, "--state",
                          str(tmp_path / "cli-state.json"))
        assert done.returncode == 0, done.stderr
        assert "imported 240 resources" in done.stderr
        assert holdings(by_cli.base) == want

        # $import, from the service's own import storage.
        by_op.imports.mkdir(parents=True, exist_ok=True)
        parameter = [{"name": "inputFormat", "valueString": "application/fhir+ndjson"},
                     {"name": "mode", "valueString": "IncrementalLoad"}]
        for rt, path in files:
            shutil.copy(path, by_op.imports / path.name)
            parameter.append({"name": "input", "part": [{"name": "type", "valueString": rt},
                                                        {"name": "url", "valueUri": path.name}]})
        r = requests.post(f"{by_op.base}/$import", json={"resourceType": "Parameters", "parameter": parameter},
                          headers={"Prefer": "respond-async", "Content-Type": FHIR_JSON})
        assert r.status_code == 202, r.text
        result = wait_done(r.headers["Content-Location"])
        assert sum(o["count"] for o in result["output"]) == 240
        assert result["error"] == []
        # IncrementalLoad keeps each resource's versionId and lastUpdated.
        assert holdings(by_op.base, keep_meta=True) == want_with_meta
    finally:
        for s in (src, by_cli, by_op):
            s.close()


def wait_for_progress(state: Path, proc: subprocess.Popen, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the import finished before it could be interrupted"
        try:
            files = json.loads(state.read_text())["files"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            files = {}
        if any(f["offset"] > 0 and not f["done"] for f in files.values()):
            return files
        time.sleep(0.01)
    raise AssertionError("no progress was recorded")


def test_hds_import_reports_bad_lines_by_file_and_line_and_resumes(tmp_path):
    svc = SoloFhir(tmp_path / "svc")
    svc.start()
    try:
        lines = [json.dumps({"resourceType": "Patient", "id": f"cli-{i}", "gender": "male"}) for i in range(4000)]
        lines[4] = '{"resourceType": "Patient", "id": '  # line 5: not JSON
        lines[9] = json.dumps({"resourceType": "Patient", "id": "cli-9", "gender": "sometimes"})  # line 10
        lines[3989] = json.dumps({"name": "no type"})  # line 3990
        # The same resource again, a few lines on: a second version, in file order.
        lines[3994] = json.dumps({"resourceType": "Patient", "id": "cli-3993", "gender": "female"})
        data = tmp_path / "data"
        data.mkdir()
        (data / "patients.ndjson").write_text("\n".join(lines) + "\n")
        # A transaction Bundle file goes as it is, urn:uuid references and all.
        p = f"urn:uuid:{uuid.uuid4()}"
        (data / "synthea.json").write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": p, "resource": {"resourceType": "Patient", "name": [{"family": "Bundled"}]},
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "t"},
                          "subject": {"reference": p}}, "request": {"method": "POST", "url": "Observation"}},
        ]}))
        state = tmp_path / "state.json"
        cmd = [str(find_binary()), "import", "--quiet", str(data), "--server", svc.base, "--state", str(state),
               "--batch-size", "10", "--concurrency", "1"]
        first = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        wait_for_progress(state, first)
        first.send_signal(signal.SIGKILL)
        _, first_err = first.communicate()
        assert f"{data / 'patients.ndjson'}:5: not valid JSON" in first_err, first_err
        assert f"{data / 'patients.ndjson'}:10: 400" in first_err and "Patient.gender" in first_err, first_err

        second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert second.returncode == 2, second.stderr  # done, with a refused line
        assert f"{data / 'patients.ndjson'}:3990: no resourceType" in second.stderr, second.stderr
        assert ":5:" not in second.stderr, "the resumed run started over"
        imported = int(second.stderr.split("imported ")[1].split(" ")[0])
        assert 0 < imported < 3997 + 2, second.stderr

        total = requests.get(f"{svc.base}/Patient?_summary=count").json()["total"]
        assert total == 3996 + 1
        again = requests.get(f"{svc.base}/Patient/cli-3993").json()
        assert (again["gender"], again["meta"]["versionId"]) == ("female", "2")
        bundled = requests.get(f"{svc.base}/Observation?subject:Patient.family=Bundled").json()
        assert len(bundled["entry"]) == 1

        third = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert third.returncode == 0 and "nothing left to import" in third.stderr, third.stderr
    finally:
        svc.close()
