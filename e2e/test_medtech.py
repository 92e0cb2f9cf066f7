"""The MedTech service end to end: device messages published with `mosquitto_pub` to a real
Mosquitto broker become FHIR Observations through Azure-format templates
(examples/templates/vitals), read back with fhirpy. Also: error records on the error topic, a
restart of the service and of the broker mid-stream (nothing lost, nothing duplicated), HTTP
ingestion, the mapping debugger, and the embedded broker of `hds up -f examples/`."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import requests
from fhirpy import SyncFHIRClient

from conftest import ADMIN_URL, EXAMPLES, client_token, find_binary, free_port, free_port_pair, wait_ready

TEMPLATES = EXAMPLES / "templates" / "vitals"
HOUR = "2026-12-01T10"
WAIT_S = 30


class Mosquitto:
    """Our own broker, persistent, so a restart keeps queued and in-flight messages."""

    def __init__(self, tmp: Path):
        self.port = free_port()
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.conf = tmp / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            # Started as root, Mosquitto drops to the `mosquitto` user, who cannot write into
            # this private temp dir: its database would never be saved, and a restart would
            # lose the sessions the test relies on. Staying the user who runs the test keeps it.
            f"user {getpass.getuser()}\n"
            "persistence true\n"
            f"persistence_location {tmp}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 0\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = (self.tmp / "mosquitto.log").open("a")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            r = subprocess.run(["mosquitto_pub", "-p", str(self.port), "-t", "ping", "-m", "x"], capture_output=True)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        pytest.fail("mosquitto did not start: " + (self.tmp / "mosquitto.log").read_text())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # it saves its database on the way out
            self.proc.wait(10)

    def publish(self, topic: str, message, *, props: dict | None = None) -> None:
        payload = message if isinstance(message, str) else json.dumps(message)
        cmd = ["mosquitto_pub", "-p", str(self.port), "-q", "1", "-V", "5", "-t", topic, "-m", payload]
        for k, v in (props or {}).items():
            cmd += ["-D", "publish", "user-property", k, v]
        subprocess.run(cmd, check=True, timeout=10)

    def publish_lines(self, topic: str, messages: list[dict]) -> None:
        """One connection, one QoS 1 message per line (`mosquitto_pub -l`)."""
        lines = "".join(json.dumps(m) + "\n" for m in messages)
        subprocess.run(["mosquitto_pub", "-p", str(self.port), "-q", "1", "-t", topic, "-l"],
                       input=lines.encode(), check=True, timeout=30)


class Hds:
    """`hds up` on manifests and a data directory that survive a restart (the databases are on
    the shared PostgreSQL, named after this test's FhirService)."""

    def __init__(self, tmp: Path, manifests: Path):
        self.tmp = tmp
        self.manifests = manifests
        self.listen = f"127.0.0.1:{free_port()}"
        self.endpoints_file = tmp / "endpoints.json"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.endpoints_file.unlink(missing_ok=True)
        log = (self.tmp / "hds.log").open("a")
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")}
        self.proc = subprocess.Popen(
            [str(find_binary()), "up", "-f", str(self.manifests), "--listen", self.listen,
             "--data-dir", str(self.tmp / "data"), "--endpoints-file", str(self.endpoints_file),
             "--postgres-url", ADMIN_URL, "--mqtt-listen", f"127.0.0.1:{free_port_pair()}"],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 60
        while time.time() < deadline:
            assert self.proc.poll() is None, self.log()
            if self.endpoints_file.exists():
                try:
                    self.endpoints = json.loads(self.endpoints_file.read_text())
                except json.JSONDecodeError:
                    continue
                # Subscribed, not only listening: a message published before would be lost.
                why = wait_ready(f"http://{self.listen}", time.monotonic() + 30)
                assert why is None, f"{why}\n{self.log()}"
                return
            time.sleep(0.1)
        pytest.fail("hds up did not come up:\n" + self.log())

    def log(self) -> str:
        return (self.tmp / "hds.log").read_text(errors="replace")[-20000:]

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def url(self, kind: str) -> str:
        return next(s["url"] for s in self.endpoints["services"] if s["kind"] == kind)

    def token(self) -> str:
        return client_token(self.endpoints)

    def fhir(self) -> SyncFHIRClient:
        return SyncFHIRClient(self.url("FhirService"), authorization=f"Bearer {self.token()}")


def manifests(dir: Path, fhir_name: str, broker_port: int, client_id: str, *, scheme: str = "mqtt",
              mqtt: dict | None = None, extra: list | None = None) -> Path:
    dir.mkdir(parents=True, exist_ok=True)
    (dir / "workspace.yaml").write_text((EXAMPLES / "workspace.yaml").read_text())
    docs = (extra or []) + [
        {"apiVersion": "hds.dev/v1alpha1", "kind": "FhirService", "metadata": {"name": fhir_name},
         "spec": {"workspaceRef": {"name": "demo"}, "kind": "fhir-R4"}},
        {"apiVersion": "hds.dev/v1alpha1", "kind": "MedTechService", "metadata": {"name": "vitals"},
         "spec": {
             "workspaceRef": {"name": "demo"},
             "ingestion": {"mqtt": {"brokerUrl": f"{scheme}://127.0.0.1:{broker_port}",
                                    "topicFilter": "devices/+/messages/events", "qos": 1,
                                    "clientId": client_id, **(mqtt or {})}},
             "errorTopic": "hds/errors",
             "deviceMapping": {"content": json.loads((TEMPLATES / "devicemapping.json").read_text())},
             "fhirDestination": {
                 "fhirServiceRef": {"name": fhir_name},
                 "resourceIdentityResolutionType": "Create",
                 "fhirMapping": {"content": json.loads((TEMPLATES / "fhirmapping.json").read_text())},
             },
         }},
    ]
    # JSON is YAML.
    (dir / "services.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs))
    return dir


def drop_database(fhir_name: str) -> None:
    db = "hds_fhir_" + fhir_name.replace("-", "_")
    subprocess.run(["psql", ADMIN_URL, "-qc", f'drop database if exists "{db}" with (force)'], check=False)


@pytest.fixture()
def stack():
    """A Mosquitto of our own and `hds up` with the vitals MedTechService reading from it."""
    tmp = Path(tempfile.mkdtemp(prefix="hds-medtech-"))
    fhir_name = f"f{uuid.uuid4().hex[:10]}"
    broker = Mosquitto(tmp / "broker")
    broker.start()
    hds = Hds(tmp, manifests(tmp / "manifests", fhir_name, broker.port, f"e2e-{fhir_name}"))
    hds.start()
    try:
        yield broker, hds
    finally:
        hds.stop()
        broker.stop()
        drop_database(fhir_name)


def wait_for(what: str, fn, timeout: float = WAIT_S):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}; last saw {last!r}")


def observations(fhir: SyncFHIRClient, code: str, device_identifier: str) -> list:
    devices = fhir.resources("Device").search(identifier=device_identifier).fetch_all()
    if len(devices) != 1:
        return []
    return (fhir.resources("Observation")
            .search(code=code, device=f"Device/{devices[0].id}").fetch_all())


def topic(device: str) -> str:
    return f"devices/{device}/messages/events"


def test_vitals_become_observations_through_azure_templates(stack):
    broker, hds = stack
    u = uuid.uuid4().hex[:8]
    patient = f"pat-{u}"
    # Heart rate (IotJsonPathContent): device from the topic, time from an MQTT 5 user property.
    for second, hr in [(0, 71), (2, 72), (5, 75)]:
        broker.publish(topic(f"hr-{u}"), {"heartRate": hr, "patientId": patient},
                       props={"iothub-creation-time-utc": f"{HOUR}:00:0{second}Z"})
    broker.publish(topic(f"hr-{u}"), {"heartRate": 80, "patientId": patient},
                   props={"iothub-creation-time-utc": "2026-12-01T11:30:00Z"})
    # Blood pressure, grouped by session (correlation id).
    for minute, (sys_, dia) in [(1, (120, 80)), (3, (125, 82))]:
        broker.publish(topic(f"bp-{u}"), {"deviceId": f"bp-{u}", "patientId": patient, "sessionId": f"s-{u}",
                                          "time": f"{HOUR}:0{minute}:00Z", "systolic": sys_, "diastolic": dia})
    # SpO2 (JMESPath), one Observation per reading.
    ts = 1764583200000  # 2025-12-01T10:00:00Z
    broker.publish(topic(f"ox-{u}"), {"deviceId": f"ox-{u}", "patientId": patient,
                                      "readings": [{"type": "spo2", "value": 97, "ts": ts},
                                                   {"type": "spo2", "value": 98.5, "ts": ts + 60000}]})
    # A fall event (CodeableConcept).
    broker.publish(topic(f"fall-{u}"), {"deviceId": f"fall-{u}", "patientId": patient,
                                        "time": f"{HOUR}:45:00Z", "event": "fall"})

    fhir = hds.fhir()
    hr = wait_for("two heart-rate Observations", lambda: (o := observations(fhir, "8867-4", f"hr-{u}")) and len(o) == 2 and o)
    by_start = {o["effectivePeriod"]["start"]: o for o in hr}
    ten = by_start[f"{HOUR}:00:00Z"]
    assert ten["valueSampledData"]["data"] == "71 E 72 E E 75", ten
    assert ten["valueSampledData"]["period"] == 1000
    assert ten["effectivePeriod"]["end"].startswith(f"{HOUR}:59:59.9999999")
    assert ten["status"] == "final"
    assert {c["code"] for c in ten["code"]["coding"]} == {"8867-4", "heartrate"}
    assert by_start["2026-12-01T11:00:00Z"]["valueSampledData"]["data"].endswith("80")

    bp = wait_for("the blood-pressure Observation", lambda: observations(fhir, "85354-9", f"bp-{u}"))
    assert len(bp) == 1
    assert bp[0]["effectivePeriod"] == {"start": f"{HOUR}:01:00Z", "end": f"{HOUR}:03:00Z"}
    values = {c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"] for c in bp[0]["component"]}
    assert values == {"8480-6": 125, "8462-4": 82}

    ox = wait_for("two SpO2 Observations", lambda: (o := observations(fhir, "59408-5", f"ox-{u}")) and len(o) == 2 and o)
    assert sorted(o["valueQuantity"]["value"] for o in ox) == [97, 98.5]
    assert all(o["valueQuantity"]["unit"] == "%" for o in ox)

    fall = wait_for("the fall Observation", lambda: observations(fhir, "1912002", f"fall-{u}"))
    assert fall[0]["valueCodeableConcept"]["text"] == "Fall detected"
    assert fall[0]["valueCodeableConcept"]["coding"][0]["code"] == "217082002"

    # Create resolution: one Patient for all four devices, each Device linked to it.
    patients = fhir.resources("Patient").search(identifier=patient).fetch_all()
    assert len(patients) == 1
    for o in hr + bp + ox + fall:
        assert o["subject"]["reference"] == f"Patient/{patients[0].id}"


def test_bad_messages_are_reported_and_the_stream_goes_on(stack):
    broker, hds = stack
    u = uuid.uuid4().hex[:8]
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(broker.port), "-t", "hds/errors", "-q", "1", "-W", str(WAIT_S)],
                           stdout=subprocess.PIPE, text=True)
    records: list[dict] = []
    reader = threading.Thread(target=lambda: records.extend(json.loads(line) for line in sub.stdout), daemon=True)
    reader.start()
    time.sleep(0.5)  # subscribed before anything is published
    broker.publish(topic(f"x-{u}"), "{this is not json")
    broker.publish(topic(f"x-{u}"), {"nothing": "a template knows"})
    broker.publish(topic(f"bp-{u}"), {"patientId": f"p-{u}", "time": f"{HOUR}:00:00Z", "sessionId": "s",
                                      "systolic": 1, "diastolic": 2})  # no deviceId
    broker.publish(topic(f"ox-{u}"), {"deviceId": f"ox-{u}", "patientId": f"p-{u}",
                                      "readings": [{"type": "spo2", "value": "NaN", "ts": 1764583200000}]})
    broker.publish(topic(f"fall-{u}"), {"deviceId": f"fall-{u}", "patientId": f"a-{u}", "time": f"{HOUR}:00:00Z", "event": "fall"})
    broker.publish(topic(f"fall-{u}"), {"deviceId": f"fall-{u}", "patientId": f"b-{u}", "time": f"{HOUR}:01:00Z", "event": "fall"})
    # The stream goes on: a good message after all of them is written.
    broker.publish(topic(f"ok-{u}"), {"deviceId": f"ok-{u}", "patientId": f"p-{u}", "time": f"{HOUR}:02:00Z", "event": "fall"})
    fhir = hds.fhir()
    wait_for("the good message's Observation", lambda: observations(fhir, "1912002", f"ok-{u}"))

    expected = {"InvalidDeviceMessage", "TemplateNotFound", "DeviceIdentityNotDefined",
                "InvalidQuantityFhirValue", "PatientDeviceMismatch"}
    wait_for("an error record of each kind", lambda: expected <= {r["name"] for r in records})
    sub.terminate()
    by_name = {r["name"]: r for r in records}
    assert by_name["InvalidDeviceMessage"]["type"] == "DeviceMessageError"
    assert by_name["InvalidQuantityFhirValue"]["type"] == "FHIRConversionError"
    assert by_name["PatientDeviceMismatch"]["type"] == "FHIRResourceError"
    assert by_name["DeviceIdentityNotDefined"]["template"] == "bloodpressure"
    # The first patient's fall is written; the mismatching one is not.
    assert len(observations(fhir, "1912002", f"fall-{u}")) == 1
    metrics = requests.get(f"http://{hds.listen}/metrics", timeout=10).text
    assert 'name="PatientDeviceMismatch"' in metrics and "DeviceEvent" in metrics


def test_restarting_the_service_and_the_broker_mid_stream_loses_and_duplicates_nothing(stack):
    broker, hds = stack
    u = uuid.uuid4().hex[:8]
    device = f"ft-{u}"
    base = 1764583200000
    msgs = [{"deviceId": device, "patientId": f"p-{u}",
             "readings": [{"type": "spo2", "value": 90 + i % 10, "ts": base + i * 1000}]} for i in range(300)]
    chunks = [msgs[i:i + 75] for i in range(0, 300, 75)]

    broker.publish_lines(topic(device), chunks[0])
    hds.kill()  # SIGKILL while the chunk is being written: whatever was not acknowledged comes again
    broker.publish_lines(topic(device), chunks[1])  # queued by the broker for the session
    hds.start()
    broker.publish_lines(topic(device), chunks[2])
    time.sleep(0.2)
    broker.stop()
    broker.start()
    broker.publish_lines(topic(device), chunks[3])

    fhir = hds.fhir()
    got = wait_for("300 SpO2 Observations", lambda: (o := observations(fhir, "59408-5", device)) and len(o) >= 300 and o,
                   timeout=60)
    time.sleep(2)  # anything redelivered late would show up now
    got = observations(fhir, "59408-5", device)
    starts = [o["effectivePeriod"]["start"] for o in got]
    assert len(got) == 300 and len(set(starts)) == 300, f"{len(got)} Observations, {len(set(starts))} distinct"
    assert len({o["identifier"][0]["value"] for o in got}) == 300
    for o in got:
        start = datetime.fromisoformat(o["effectivePeriod"]["start"].replace("Z", "+00:00"))
        i = int(start.timestamp()) - base // 1000
        assert o["valueQuantity"]["value"] == 90 + i % 10


def completed(hds: Hds) -> int:
    for line in requests.get(f"http://{hds.listen}/metrics", timeout=10).text.splitlines():
        if line.startswith("CompletedEvent{") and 'service="vitals"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def test_replicas_split_a_shared_subscription(tmp_path):
    """Two services (as two replicas would be) in one subscription group, writing into one FHIR
    database: each takes part of the stream, and every message is written once."""
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    fhir_name = f"f{uuid.uuid4().hex[:10]}"
    replicas = [Hds(tmp_path / f"r{i}", manifests(tmp_path / f"r{i}" / "manifests", fhir_name, broker.port,
                                                    f"e2e-{fhir_name}-{i}", mqtt={"sharedSubscriptionGroup": "vitals"}))
                for i in range(2)]
    try:
        for r in replicas:
            r.tmp.mkdir(parents=True, exist_ok=True)
            r.start()
        u = uuid.uuid4().hex[:8]
        base = 1764583200000
        msgs = [{"deviceId": f"sh-{u}-{i % 4}", "patientId": f"p-{u}",
                 "readings": [{"type": "spo2", "value": 95, "ts": base + i * 1000}]} for i in range(200)]
        broker.publish_lines(topic(f"sh-{u}"), msgs)
        wait_for("200 messages done between the two", lambda: sum(completed(r) for r in replicas) >= 200)
        split = [completed(r) for r in replicas]
        assert sum(split) == 200 and all(n > 0 for n in split), split
        fhir = replicas[0].fhir()
        total = sum(len(observations(fhir, "59408-5", f"sh-{u}-{d}")) for d in range(4))
        assert total == 200
        assert len(fhir.resources("Patient").search(identifier=f"p-{u}").fetch_all()) == 1
    finally:
        for r in replicas:
            r.stop()
        broker.stop()
        drop_database(fhir_name)


def test_http_ingestion_and_the_mapping_debugger(stack, tmp_path):
    _, hds = stack
    u = uuid.uuid4().hex[:8]
    medtech = hds.url("MedTechService")
    auth = {"Authorization": f"Bearer {hds.token()}"}
    r = requests.post(f"{medtech}/ingest", params={"deviceId": f"web-{u}"}, json={"heartRate": 64, "patientId": f"p-{u}"})
    assert r.status_code == 401, r.text
    r = requests.post(f"{medtech}/ingest", params={"deviceId": f"web-{u}"}, headers=auth,
                      json={"heartRate": 64, "patientId": f"p-{u}"})
    assert r.status_code == 200, r.text
    outcome = r.json()
    assert outcome["measurements"] == 1 and outcome["errors"] == []
    assert outcome["observations"][0]["saved"] == "created"
    obs = hds.fhir().resources("Observation").search(_id=outcome["observations"][0]["id"]).fetch_all()
    assert obs[0]["valueSampledData"]["data"].split()[-1] == "64"
    r = requests.post(f"{medtech}/ingest", headers=auth, data=b"{nope")
    assert r.status_code == 422 and r.json()["errors"][0]["name"] == "InvalidDeviceMessage"

    message = {"deviceId": "d", "patientId": "p", "readings": [{"type": "spo2", "value": 96, "ts": 1764583200000}]}
    r = requests.post(f"{medtech}/$validate-mapping", headers=auth, json={"message": message})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["measurements"][0]["Type"] == "spo2"
    assert report["observations"][0]["valueQuantity"]["value"] == 96
    r = requests.post(f"{medtech}/$validate-mapping", headers=auth,
                      json={"message": message, "fhirMapping": {"templateType": "CollectionFhir", "template": [
                          {"templateType": "CodeValueFhir", "template": {"typeName": "spo2", "periodInterval": 30}}]}})
    assert r.json()["fhirMapping"]["errors"], r.text

    # The same debugger on the command line.
    (tmp_path / "m.json").write_text(json.dumps(message))
    run = subprocess.run([str(find_binary()), "medtech", "test", "--device-mapping", str(TEMPLATES / "devicemapping.json"),
                          "--fhir-mapping", str(TEMPLATES / "fhirmapping.json"), "--message", str(tmp_path / "m.json")],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["observations"][0]["valueQuantity"]["value"] == 96
    message["readings"][0]["value"] = "NaN"
    (tmp_path / "m.json").write_text(json.dumps(message))
    run = subprocess.run([str(find_binary()), "medtech", "test", "--device-mapping", str(TEMPLATES / "devicemapping.json"),
                          "--fhir-mapping", str(TEMPLATES / "fhirmapping.json"), "--message", str(tmp_path / "m.json")],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 1
    assert json.loads(run.stdout)["errors"][0]["name"] == "InvalidQuantityFhirValue"


def test_a_broker_with_tls_and_a_password(tmp_path):
    """mqtts:// with a private CA and a username, both from Secrets among the manifests."""
    # Mosquitto started as root reads these after dropping to its own user.
    certs = Path(tempfile.mkdtemp(prefix="hds-mqtt-tls-"))
    os.chmod(certs, 0o755)

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=certs, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=e2e-ca",
            "-keyout", "ca.key", "-out", "ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
            "-out", "server.csr")
    (certs / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.pem")
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(certs / "passwords"), "medtech", "s3cret"], check=True)
    for f in certs.iterdir():
        os.chmod(f, 0o644)
    broker = Mosquitto(tmp_path / "broker")
    broker.conf.write_text(
        f"listener {broker.port} 127.0.0.1\n"
        f"cafile {certs / 'ca.pem'}\ncertfile {certs / 'server.pem'}\nkeyfile {certs / 'server.key'}\n"
        f"allow_anonymous false\npassword_file {certs / 'passwords'}\n"
    )
    tls = ["-h", "127.0.0.1", "--cafile", str(certs / "ca.pem"), "-u", "medtech", "-P", "s3cret"]
    broker.proc = subprocess.Popen(["mosquitto", "-c", str(broker.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_for("the TLS broker", lambda: subprocess.run(
        ["mosquitto_pub", "-p", str(broker.port), *tls, "-t", "ping", "-m", "x"], capture_output=True).returncode == 0,
        timeout=10)
    fhir_name = f"f{uuid.uuid4().hex[:10]}"
    secrets = [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "broker-login"},
         "stringData": {"username": "medtech", "password": "s3cret"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "broker-ca"},
         "stringData": {"ca.crt": (certs / "ca.pem").read_text()}},
    ]
    hds = Hds(tmp_path, manifests(tmp_path / "manifests", fhir_name, broker.port, f"e2e-{fhir_name}", scheme="mqtts",
                                  mqtt={"credentialsSecretRef": {"name": "broker-login"},
                                        "tls": {"enabled": True, "caSecretRef": {"name": "broker-ca", "key": "ca.crt"}}},
                                  extra=secrets))
    hds.start()
    try:
        u = uuid.uuid4().hex[:8]
        subprocess.run(["mosquitto_pub", "-p", str(broker.port), *tls, "-q", "1", "-t", topic(f"tls-{u}"), "-m",
                        json.dumps({"deviceId": f"tls-{u}", "patientId": f"p-{u}", "time": f"{HOUR}:00:00Z",
                                    "event": "fall"})], check=True, timeout=10)
        wait_for("the Observation through TLS", lambda: observations(hds.fhir(), "1912002", f"tls-{u}"))
    finally:
        hds.stop()
        broker.stop()
        drop_database(fhir_name)
        shutil.rmtree(certs, ignore_errors=True)


def test_one_service_from_its_config_file_with_azure_ids_and_the_discard_policy(stack, tmp_path):
    """`hds medtech --config` (what the operator deploys), writing into the stack's FHIR service
    as the dev client: DiscardMatchAndExtractErrors keeps a message's good readings, and Azure's
    id scheme makes the ids Azure's MedTech service would."""
    broker, hds = stack
    client = next(c for c in hds.endpoints["clients"] if c["clientId"] == "hds-dev")
    port = free_port()
    config = {
        "name": "solo", "listen": f"127.0.0.1:{port}", "auth": {"mode": "none"},
        "mqtt": {"brokerUrl": f"mqtt://127.0.0.1:{broker.port}", "topicFilter": "solo/+", "clientId": f"solo-{port}"},
        "deviceMapping": json.loads((TEMPLATES / "devicemapping.json").read_text()),
        "fhirMapping": json.loads((TEMPLATES / "fhirmapping.json").read_text()),
        "fhir": {"fhirUrl": hds.url("FhirService"), "tokenUrl": hds.endpoints["tokenUrl"],
                 "clientId": client["clientId"], "clientSecret": client["clientSecret"]},
        "resolution": "Create", "errorPolicy": "DiscardMatchAndExtractErrors", "observationIdScheme": "Azure",
    }
    (tmp_path / "medtech.yaml").write_text(json.dumps(config))
    log = (tmp_path / "solo.log").open("w")
    proc = subprocess.Popen([str(find_binary()), "medtech", "--config", str(tmp_path / "medtech.yaml")],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for("the service to listen", lambda: _healthy(port), timeout=30)
        u = uuid.uuid4().hex[:8]
        ts = 1764583200000
        broker.publish(f"solo/{u}", {"deviceId": f"solo-{u}", "patientId": f"p-{u}", "readings": [
            {"type": "spo2", "value": 96, "ts": ts}, {"type": "spo2", "ts": ts + 1000}]})
        fhir = hds.fhir()
        got = wait_for("the good reading's Observation", lambda: observations(fhir, "59408-5", f"solo-{u}"))
        time.sleep(1)
        got = observations(fhir, "59408-5", f"solo-{u}")
        assert len(got) == 1 and got[0]["valueQuantity"]["value"] == 96
        ident = got[0]["identifier"][0]
        assert ident["system"] == "https://azure.microsoft.com/en-us/services/iomt-fhir-connector/"
        assert got[0]["id"] == hashlib.sha256(f"{ident['system']}_{ident['value']}".encode()).hexdigest()
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'name="RequiredValueNotFound"' in metrics
        # Not ready without its broker, ready again once it is back.
        broker.stop()
        wait_for("readiness to fail", lambda: not _healthy(port), timeout=15)
        r = requests.get(f"http://127.0.0.1:{port}/health/check", timeout=2)
        assert r.status_code == 503 and "MQTT" in r.json()["reason"]
        # Liveness does not follow the broker: the kubelet must not restart the pod for it.
        assert requests.get(f"http://127.0.0.1:{port}/health/live", timeout=2).status_code == 200
        broker.start()
        wait_for("readiness to come back", lambda: _healthy(port), timeout=30)
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def _healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/health/check", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def test_examples_run_on_the_embedded_broker(hds_server, http, base_url):
    medtech = next(s for s in hds_server.endpoints["services"] if s["kind"] == "MedTechService")
    port = medtech["mqtt"].rsplit(":", 1)[1]
    u = uuid.uuid4().hex[:8]
    subprocess.run(["mosquitto_pub", "-p", port, "-q", "1", "-t", f"devices/ex-{u}/vitals", "-m",
                    json.dumps({"deviceId": f"ex-{u}", "patientId": f"p-{u}", "endDate": f"{HOUR}:00:00Z",
                                "heartRate": 66})], check=True, timeout=10)

    def found():
        devices = http.get(f"{base_url}/Device", params={"identifier": f"ex-{u}"}).json().get("entry", [])
        if not devices:
            return None
        bundle = http.get(f"{base_url}/Observation", params={"device": f"Device/{devices[0]['resource']['id']}"}).json()
        return bundle.get("entry")

    entries = wait_for("the example heart rate in FHIR", found)
    assert entries[0]["resource"]["valueQuantity"]["value"] == 66
