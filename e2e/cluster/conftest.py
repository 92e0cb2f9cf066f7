"""Fixtures and helpers of the cluster suite (e2e/cluster/README.md): kubectl through
subprocess, the operator installed by the chart in `hds-system`, one fresh namespace per run
with PostgreSQL and Mosquitto (manifests/), the Workspace `demo` and its three services, and
`kubectl port-forward` to reach them from here.

Not collected by the normal suite (`collect_ignore` in e2e/conftest.py); `run.sh` runs it with
`--rootdir e2e/cluster --confcutdir e2e/cluster`, so e2e/conftest.py is not loaded either.
Nothing here is a skip when the cluster misbehaves: a missing cluster, operator or Ready
condition is a failure, with what kubectl and the operator said.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import re
import secrets
import string
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import unquote, urlsplit

import pytest
import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
MANIFESTS = HERE / "manifests"
TEMPLATES = REPO / "examples" / "templates" / "vitals"
CHART_CRDS = REPO / "charts" / "hds" / "crds"

# Where run.sh installs the chart (release `hds`: Deployment and Lease `hds-operator`).
OPERATOR_NAMESPACE = os.environ.get("HDS_OPERATOR_NAMESPACE", "hds-system")
OPERATOR_DEPLOYMENT = os.environ.get("HDS_OPERATOR_DEPLOYMENT", "hds-operator")
OPERATOR_LEASE = os.environ.get("HDS_OPERATOR_LEASE", OPERATOR_DEPLOYMENT)
# Labels the namespaces of one run.sh invocation, so its exit trap can remove leftovers.
RUN_ID = os.environ.get("HDS_E2E_RUN", uuid.uuid4().hex[:12])
KEEP_NAMESPACE = os.environ.get("HDS_E2E_KEEP_NAMESPACE") == "1"

# How long a resource may take to become Ready (image pulls, migrations) and the rest.
READY_TIMEOUT_S = int(os.environ.get("HDS_E2E_READY_TIMEOUT", "300"))
KUBECTL_TIMEOUT_S = 120

API_VERSION = "hds.dev/v1alpha1"
# Fully qualified, so that no other group's `workspaces` (there are several) is meant.
RESOURCE = {
    "Workspace": "workspaces.hds.dev",
    "FhirService": "fhirservices.hds.dev",
    "DicomService": "dicomservices.hds.dev",
    "MedTechService": "medtechservices.hds.dev",
}
SERVICE_KINDS = ("FhirService", "DicomService", "MedTechService")
CRD_NAMES = tuple(RESOURCE.values())

WORKSPACE = "demo"
CLIENT_ID = "e2e-app"
CLIENT_SECRET_NAME = "e2e-app-credentials"
FINALIZER = "hds.dev/cleanup"
CONFIG_HASH = "hds.dev/config-hash"
FHIR_JSON = "application/fhir+json"


# ----------------------------------------------------------------------------------------------
# kubectl


class KubectlError(AssertionError):
    """A kubectl command that failed; `stderr` is what it said."""

    def __init__(self, cmd: list[str], result: subprocess.CompletedProcess):
        self.cmd = cmd
        self.returncode = result.returncode
        self.stdout = result.stdout
        self.stderr = result.stderr
        super().__init__(
            f"`{' '.join(cmd)}` exited with {result.returncode}\n"
            f"----- stderr -----\n{result.stderr}\n----- stdout -----\n{result.stdout[-5000:]}"
        )


def kubectl_run(*args: str, input: str | None = None, timeout: float = KUBECTL_TIMEOUT_S) -> subprocess.CompletedProcess:
    """`kubectl <args>`, output captured, whatever its exit status."""
    cmd = ["kubectl", *args]
    try:
        return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"`{' '.join(cmd)}` did not finish within {timeout} s: {e.stderr!r}") from None
    except FileNotFoundError:
        pytest.fail("kubectl is not installed (see e2e/cluster/README.md)", pytrace=False)


def kubectl(*args: str, input: str | None = None, timeout: float = KUBECTL_TIMEOUT_S) -> str:
    """`kubectl <args>`: its stdout, or KubectlError (an AssertionError) when it fails."""
    result = kubectl_run(*args, input=input, timeout=timeout)
    if result.returncode != 0:
        raise KubectlError(["kubectl", *args], result)
    return result.stdout


def get(resource: str, name: str, namespace: str) -> dict:
    return json.loads(kubectl("get", resource, name, "-n", namespace, "-o", "json"))


def get_or_none(resource: str, name: str, namespace: str) -> dict | None:
    out = kubectl("get", resource, name, "-n", namespace, "--ignore-not-found", "-o", "json")
    return json.loads(out) if out.strip() else None


def get_list(resource: str, namespace: str, *selector: str) -> list[dict]:
    args = ["get", resource, "-n", namespace, "-o", "json"]
    if selector:
        args += ["-l", ",".join(selector)]
    return json.loads(kubectl(*args))["items"]


def apply(obj: dict, namespace: str | None = None) -> str:
    """`kubectl apply -f -` of the object as JSON (into `namespace` when given)."""
    args = ["apply", "-f", "-"]
    if namespace:
        args[1:1] = ["-n", namespace]
    return kubectl(*args, input=json.dumps(obj))


def try_apply(obj: dict, namespace: str) -> subprocess.CompletedProcess:
    """Like `apply`, but returns the result for the caller to judge (for refusals)."""
    return kubectl_run("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))


def apply_manifest(name: str, namespace: str, **values: str) -> str:
    """A file of manifests/ with ${NAMESPACE} and the given ${...} values substituted (a missing
    value is a KeyError), applied with `kubectl apply -n <namespace> -f -`."""
    text = string.Template((MANIFESTS / name).read_text()).substitute(NAMESPACE=namespace, **values)
    return kubectl("apply", "-n", namespace, "-f", "-", input=text)


def secret_value(namespace: str, name: str, key: str) -> str:
    data = get("secret", name, namespace).get("data") or {}
    assert key in data, f"Secret {name} has no key {key!r} (keys: {sorted(data)})"
    return base64.b64decode(data[key]).decode()


def condition(obj: dict, type_: str) -> dict | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def poll(what: str, fn: Callable[[], object], timeout: float = 60, interval: float = 2, diagnose: Callable[[], str] | None = None):
    """Calls `fn` until it returns something truthy, which is returned; fails after `timeout`
    with the last value (and what `diagnose` says)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    extra = f"\n{diagnose()}" if diagnose else ""
    pytest.fail(f"timed out after {timeout} s waiting for {what}; last saw {last!r}{extra}", pytrace=False)


# ----------------------------------------------------------------------------------------------
# Diagnostics, for failure messages


def operator_selector() -> str:
    """The label selector of the operator's pods, from its Deployment."""
    r = kubectl_run("get", "deployment", OPERATOR_DEPLOYMENT, "-n", OPERATOR_NAMESPACE, "-o", "json")
    if r.returncode == 0:
        labels = json.loads(r.stdout)["spec"]["selector"].get("matchLabels") or {}
        if labels:
            return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return "app.kubernetes.io/component=operator"


def operator_logs(tail: int = 80) -> str:
    """The last lines of every operator replica's log, each line prefixed with its pod."""
    r = kubectl_run(
        "logs", "-n", OPERATOR_NAMESPACE, "-l", operator_selector(),
        "--all-containers", "--prefix", f"--tail={tail}", "--max-log-requests=10",
    )
    return r.stdout + r.stderr


def diagnostics(namespace: str, *objects: tuple[str, str]) -> str:
    """What to look at when something did not become what it should: the named objects, the
    namespace's hds resources, pods and events, and the operator's log."""
    parts = []
    for resource, name in objects:
        r = kubectl_run("get", resource, name, "-n", namespace, "-o", "yaml")
        parts.append(f"----- {resource}/{name} -----\n{r.stdout}{r.stderr}")
    for title, args in [
        ("hds resources", ["get", "hds", "-n", namespace, "-o", "wide"]),
        ("pods", ["get", "pods", "-n", namespace, "-o", "wide"]),
        ("events", ["get", "events", "-n", namespace]),
        ("operator pods", ["get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "wide"]),
    ]:
        r = kubectl_run(*args)
        parts.append(f"----- {title} -----\n{r.stdout}{r.stderr}")
    parts.append(f"----- operator log -----\n{operator_logs()}")
    return "\n".join(parts)


def pod_logs(namespace: str, deployment: str, tail: int = 80) -> str:
    r = kubectl_run("logs", "-n", namespace, f"deployment/{deployment}", "--all-containers", f"--tail={tail}")
    return f"----- log of deployment/{deployment} -----\n{r.stdout}{r.stderr}"


def wait_ready(kind: str, name: str, namespace: str, timeout: int = READY_TIMEOUT_S) -> dict:
    """`kubectl wait --for=condition=Ready` (kubectl also requires the condition's
    observedGeneration to have caught up with metadata.generation); the object after."""
    resource = RESOURCE.get(kind, kind)
    r = kubectl_run(
        "wait", "--for=condition=Ready", f"{resource}/{name}", "-n", namespace, f"--timeout={timeout}s",
        timeout=timeout + 30,
    )
    if r.returncode != 0:
        pytest.fail(
            f"{kind} {name} did not become Ready within {timeout} s: {r.stderr.strip()}\n"
            + diagnostics(namespace, (resource, name)),
            pytrace=False,
        )
    return get(resource, name, namespace)


def wait_condition(kind: str, name: str, namespace: str, type_: str, accept: Callable[[dict], bool], what: str,
                   timeout: float = 180) -> dict:
    """Polls the object until its condition `type_` satisfies `accept`; that condition."""
    resource = RESOURCE.get(kind, kind)

    def check():
        c = condition(get(resource, name, namespace), type_)
        return c if c is not None and accept(c) else None

    return poll(f"{kind} {name}: {what}", check, timeout=timeout,
                diagnose=lambda: diagnostics(namespace, (resource, name)))


def wait_gone(resource: str, name: str, namespace: str, timeout: float = 120) -> None:
    poll(f"{resource}/{name} to be deleted", lambda: get_or_none(resource, name, namespace) is None,
         timeout=timeout, diagnose=lambda: diagnostics(namespace, (resource, name)))


def service_url(name: str, namespace: str) -> str:
    """The in-cluster URL the operator reports for a service (status.url and .internalUrl)."""
    return f"http://{name}.{namespace}.svc.cluster.local:8080"


def owned_by(obj: dict, kind: str, name: str) -> bool:
    return any(o.get("kind") == kind and o.get("name") == name for o in obj["metadata"].get("ownerReferences") or [])


# ----------------------------------------------------------------------------------------------
# PostgreSQL in the test namespace


def psql(namespace: str, sql: str) -> str:
    """One statement through psql in the postgres pod (local socket, trust), unaligned output."""
    return kubectl("exec", "-n", namespace, "deployment/postgres", "--",
                   "psql", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-Atc", sql).strip()


def database_exists(namespace: str, database: str) -> bool:
    assert re.fullmatch(r"[a-z0-9_]+", database), f"unexpected database name {database!r}"
    return psql(namespace, f"select 1 from pg_database where datname = '{database}'") == "1"


def expected_databases(namespace: str, name: str) -> set[str]:
    """The names the operator may give a service's database: `hds_<namespace>_<name>` with
    every character outside [a-z0-9_] replaced by `_`, as is when that fits PostgreSQL's 63
    bytes; or, as operator/src/database/mod.rs does whenever a character was replaced or the
    name is too long (so that `a-b`/`c` and `a`/`b-c` cannot share a database), its first 54
    bytes, `_` and the first 8 hex digits of the SHA-256 of `<namespace>/<name>`."""
    clean = re.sub(r"[^a-z0-9_]", "_", f"hds_{namespace}_{name}".lower())
    suffix = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:8]
    names = {f"{clean[:63 - 1 - len(suffix)]}_{suffix}"}
    if len(clean) <= 63:
        names.add(clean)
    return names


def database_of(namespace: str, service: str) -> str:
    """The database named in the URL of the service's `<name>-db` Secret (key `url`)."""
    url = secret_value(namespace, f"{service}-db", "url")
    db = unquote(urlsplit(url).path.lstrip("/"))
    assert db, f"the url in Secret {service}-db names no database"
    return db


# ----------------------------------------------------------------------------------------------
# Port-forwards and tokens


class PortForward:
    def __init__(self, url: str, output: list[str]):
        self.url = url
        self._output = output

    def output(self) -> str:
        return "".join(self._output)


@contextmanager
def port_forward(namespace: str, service: str, port: int = 8080, timeout: float = 30) -> Iterator[PortForward]:
    """`kubectl port-forward svc/<service> :<port>` on 127.0.0.1: kubectl picks the local port and
    says so ("Forwarding from 127.0.0.1:NNNNN -> 8080"), which is parsed. Its output is drained
    for as long as it runs (it prints a line per connection, and a full pipe would block it);
    it is terminated when the block ends."""
    cmd = ["kubectl", "port-forward", "-n", namespace, "--address", "127.0.0.1", f"svc/{service}", f":{port}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    output: list[str] = []
    ports: queue.Queue[int | None] = queue.Queue()

    def drain():
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            m = re.search(r"Forwarding from 127\.0\.0\.1:(\d+) -> ", line)
            if m:
                ports.put(int(m.group(1)))
        ports.put(None)

    threading.Thread(target=drain, daemon=True).start()
    try:
        try:
            local = ports.get(timeout=timeout)
        except queue.Empty:
            local = None
        if local is None:
            pytest.fail(f"`{' '.join(cmd)}` did not start forwarding within {timeout} s:\n{''.join(output)}",
                        pytrace=False)
        forward = PortForward(f"http://127.0.0.1:{local}", output)
        try:
            yield forward
        except BaseException:
            print(f"----- output of `{' '.join(cmd)}` -----\n{forward.output()}")
            raise
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def base_through(forward: PortForward, status_url: str) -> str:
    """The forwarded base URL of a service whose status.url is `status_url` (same path)."""
    return forward.url + urlsplit(status_url).path.rstrip("/")


def fetch_token(namespace: str, issuer: str, client_id: str, client_secret: str) -> str:
    """A client-credentials token from the Workspace issuer (Service `<workspace>-issuer`),
    through a port-forward: POST <issuer>/oauth2/token, HTTP basic authentication, no
    `resource`, so the token names every service of the Workspace as its audience."""
    with port_forward(namespace, f"{WORKSPACE}-issuer") as fwd:
        url = f"{base_through(fwd, issuer)}/oauth2/token"
        r = requests.post(url, data={"grant_type": "client_credentials"}, auth=(client_id, client_secret), timeout=15)
        assert r.status_code == 200, f"POST {url} (issuer {issuer}): {r.status_code} {r.text}"
        body = r.json()
        assert body.get("token_type", "").lower() == "bearer", body
        return body["access_token"]


def token_claims(token: str) -> dict:
    """The claims of a JWT, unverified: only for failure messages."""
    try:
        import jwt

        return jwt.decode(token, options={"verify_signature": False})
    except Exception as e:  # noqa: BLE001 - diagnostics only
        return {"undecodable": str(e)}


# ----------------------------------------------------------------------------------------------
# The resources the suite applies (adjusted copies of examples/)


def workspace() -> dict:
    """examples/workspace.yaml for a cluster: the admin Secret of the namespace's PostgreSQL as
    the default database source (deletionPolicy Retain, the default, spelled out), and the test
    client with the example's roles."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Workspace",
        "metadata": {"name": WORKSPACE},
        "spec": {
            "defaults": {
                "postgres": {"adminSecretRef": {"name": "pg-admin", "key": "uri"}, "deletionPolicy": "Retain"},
            },
            "identity": {
                "issuer": {"tokenLifetimeSeconds": 3600},
                "clients": [{
                    "clientId": CLIENT_ID,
                    "secretRef": {"name": CLIENT_SECRET_NAME, "key": "clientSecret"},
                    "roles": ["FHIR Data Contributor", "DICOM Data Owner"],
                }],
            },
        },
    }


def client_secret(value: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": CLIENT_SECRET_NAME},
        "type": "Opaque",
        "stringData": {"clientSecret": value},
    }


def fhir_service(name: str = "fhir", **spec) -> dict:
    """examples/fhir-service.yaml without `import` (whose storage would have to come from the
    Workspace's blob storage, which this Workspace does not set)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "FhirService",
        "metadata": {"name": name},
        "spec": {
            "workspaceRef": {"name": WORKSPACE},
            "kind": "fhir-R4",
            "cors": {
                "origins": ["http://localhost:3000"],
                "headers": ["*"],
                "methods": ["GET", "POST", "PUT", "PATCH", "DELETE"],
                "maxAge": 600,
            },
            "resourceVersionPolicy": {"default": "versioned", "resourceTypeOverrides": {"Observation": "no-version"}},
            "replicas": 1,
            **spec,
        },
    }


def dicom_service(name: str = "dicom", *, fhir_sync: bool = True, **spec) -> dict:
    """examples/dicom-service.yaml with a smaller claim (the operator creates it: `size`)."""
    body: dict = {
        "workspaceRef": {"name": WORKSPACE},
        "storage": {"blob": {"filesystem": {"claimName": f"{name}-blobs", "size": "1Gi"}}},
        "enableDataPartitions": False,
        "replicas": 1,
    }
    if fhir_sync:
        body["fhirSync"] = {"enabled": True, "fhirServiceRef": {"name": "fhir"},
                            "patientIdentifierSystem": "urn:oid:1.2.3.4.5"}
    for key, value in spec.items():
        if key == "storage":
            body["storage"] = {**body["storage"], **value}
        else:
            body[key] = value
    return {"apiVersion": API_VERSION, "kind": "DicomService", "metadata": {"name": name}, "spec": body}


def medtech_service(namespace: str, name: str = "medtech") -> dict:
    """The templates of examples/templates/vitals (as examples/medtech-service.yaml gives
    mappings: `content` holds Azure's JSON), the namespace's broker, the FhirService `fhir`."""
    return {
        "apiVersion": API_VERSION,
        "kind": "MedTechService",
        "metadata": {"name": name},
        "spec": {
            "workspaceRef": {"name": WORKSPACE},
            "ingestion": {"mqtt": {
                "brokerUrl": f"mqtt://mqtt.{namespace}.svc:1883",
                "topicFilter": "devices/+/messages/events",
                "sharedSubscriptionGroup": "hds-e2e",
                "qos": 1,
            }},
            "errorTopic": "hds/errors",
            "deviceMapping": {"content": json.loads((TEMPLATES / "devicemapping.json").read_text())},
            "fhirDestination": {
                "fhirServiceRef": {"name": "fhir"},
                "resourceIdentityResolutionType": "Create",
                "fhirMapping": {"content": json.loads((TEMPLATES / "fhirmapping.json").read_text())},
            },
            "errorPolicy": "Retry",
            "replicas": 1,
        },
    }


# ----------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def operator() -> dict:
    """The operator's Deployment, once Available (it came from the chart run.sh installed)."""
    if kubectl_run("cluster-info", "--request-timeout=15s").returncode != 0:
        pytest.fail("no reachable cluster: `kubectl cluster-info` fails (see e2e/cluster/README.md)", pytrace=False)
    r = kubectl_run("wait", "--for=condition=Available", f"deployment/{OPERATOR_DEPLOYMENT}",
                    "-n", OPERATOR_NAMESPACE, f"--timeout={READY_TIMEOUT_S}s", timeout=READY_TIMEOUT_S + 30)
    if r.returncode != 0:
        pods = kubectl_run("get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "wide")
        pytest.fail(
            f"the operator Deployment {OPERATOR_NAMESPACE}/{OPERATOR_DEPLOYMENT} is not Available: "
            f"{r.stderr.strip()}\n{pods.stdout}{pods.stderr}\n{operator_logs()}",
            pytrace=False,
        )
    return get("deployment", OPERATOR_DEPLOYMENT, OPERATOR_NAMESPACE)


class ClusterNamespace:
    def __init__(self, name: str, pg_password: str):
        self.name = name
        self.pg_password = pg_password

    def pg_url(self, database: str) -> str:
        return f"postgres://postgres:{self.pg_password}@postgres.{self.name}.svc:5432/{database}"


@pytest.fixture(scope="session")
def ns(operator) -> Iterator[ClusterNamespace]:
    """A namespace of its own for this run, with PostgreSQL (Secret `pg-admin`) and Mosquitto
    (Service `mqtt`) running. At the end the hds resources are deleted first, services before
    the Workspace, while the operator and PostgreSQL still run (their finalizers may need both),
    then the namespace."""
    name = f"hds-e2e-{uuid.uuid4().hex[:8]}"
    pg_password = secrets.token_hex(16)
    apply({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "hds-e2e", "hds-e2e/run": RUN_ID}},
    })
    try:
        apply_manifest("postgres.yaml", name, PG_PASSWORD=pg_password)
        apply_manifest("mosquitto.yaml", name)
        for deployment in ("postgres", "mosquitto"):
            r = kubectl_run("rollout", "status", f"deployment/{deployment}", "-n", name,
                            f"--timeout={READY_TIMEOUT_S}s", timeout=READY_TIMEOUT_S + 30)
            if r.returncode != 0:
                pytest.fail(f"{deployment} did not roll out: {r.stderr.strip()}\n{diagnostics(name)}", pytrace=False)
        yield ClusterNamespace(name, pg_password)
    finally:
        if KEEP_NAMESPACE:
            print(f"HDS_E2E_KEEP_NAMESPACE=1: namespace {name} is kept")
        else:
            _delete_namespace(name)


def _delete_namespace(name: str) -> None:
    problems = []
    services = ",".join(RESOURCE[k] for k in SERVICE_KINDS)
    for what in (services, RESOURCE["Workspace"]):
        r = kubectl_run("delete", what, "--all", "-n", name, "--wait=true", "--timeout=300s", timeout=330)
        if r.returncode != 0:
            problems.append(f"`kubectl delete {what} --all -n {name}`: {r.stderr.strip()}")
    if problems:
        problems.append(diagnostics(name))
        # The operator did not finish its finalizers: drop them, so that the namespace can go
        # (the teardown still fails, with the above).
        for resource in RESOURCE.values():
            for item in json.loads(kubectl_run("get", resource, "-n", name, "-o", "json").stdout or '{"items": []}')["items"]:
                kubectl_run("patch", resource, item["metadata"]["name"], "-n", name, "--type", "merge",
                            "-p", '{"metadata": {"finalizers": null}}')
    r = kubectl_run("delete", "namespace", name, "--wait=true", "--timeout=300s", timeout=330)
    if r.returncode != 0:
        problems.append(f"`kubectl delete namespace {name}`: {r.stderr.strip()}")
    if problems:
        pytest.fail("teardown:\n" + "\n".join(problems), pytrace=False)


class Stack:
    """The Workspace and its three services, Ready."""

    def __init__(self, ns: ClusterNamespace, client_secret: str, objects: dict[str, dict]):
        self.ns = ns
        self.client_secret = client_secret
        self.objects = objects

    def get(self, kind: str, name: str) -> dict:
        return get(RESOURCE[kind], name, self.ns.name)

    def token(self) -> str:
        issuer = (self.get("Workspace", WORKSPACE).get("status") or {}).get("issuer")
        assert issuer, "the Workspace has no status.issuer"
        return fetch_token(self.ns.name, issuer, CLIENT_ID, self.client_secret)


@pytest.fixture(scope="session")
def stack(ns) -> Stack:
    """Applies the client Secret, Workspace `demo`, FhirService `fhir`, DicomService `dicom` and
    MedTechService `medtech`, and waits until all four are Ready."""
    value = secrets.token_urlsafe(24)
    apply(client_secret(value), ns.name)
    objects = {
        "Workspace": workspace(),
        "FhirService": fhir_service(),
        "DicomService": dicom_service(),
        "MedTechService": medtech_service(ns.name),
    }
    for obj in objects.values():
        apply(obj, ns.name)
    for kind in ("Workspace", *SERVICE_KINDS):
        wait_ready(kind, objects[kind]["metadata"]["name"], ns.name)
    return Stack(ns, value, objects)


@pytest.fixture(scope="session")
def app_token(stack) -> str:
    """A token of the test client (FHIR Data Contributor, DICOM Data Owner) for every service."""
    return stack.token()
