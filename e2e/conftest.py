"""End-to-end fixtures: run the real `hds up -f examples/` once per test session (`hds_server`);
`run_hds` runs it on any directory of manifests, for tests that need their own.

The binary comes from `HDS_BIN`, else `$CARGO_TARGET_DIR/debug/hds`, else
`$HOME/.cache/hds-target/debug/hds`. A missing binary or a server that does not come up is a
test *failure*, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

collect_ignore = ["cluster"]  # needs a Kubernetes cluster: e2e/cluster/run.sh runs it
REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
STARTUP_TIMEOUT_S = 60
SHUTDOWN_TIMEOUT_S = 20

FHIR_JSON = "application/fhir+json"


def find_binary() -> Path:
    candidates = []
    if os.environ.get("HDS_BIN"):
        candidates.append(("HDS_BIN", Path(os.environ["HDS_BIN"])))
    else:
        if os.environ.get("CARGO_TARGET_DIR"):
            candidates.append(
                ("$CARGO_TARGET_DIR/debug/hds", Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "hds")
            )
        candidates.append(
            ("$HOME/.cache/hds-target/debug/hds", Path.home() / ".cache" / "hds-target" / "debug" / "hds")
        )
    for _, path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    tried = ", ".join(f"{label}={path}" for label, path in candidates)
    pytest.fail(
        f"the hds binary was not found (tried {tried}); build it with `cargo build -p hds` "
        "or set HDS_BIN",
        pytrace=False,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_pair() -> int:
    """A free port whose successor is free too (the embedded MQTT broker takes both)."""
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no two adjacent free ports")


def _output(log_path: Path) -> str:
    try:
        return log_path.read_text(errors="replace")[-20000:]
    except OSError as e:  # pragma: no cover
        return f"<cannot read {log_path}: {e}>"


class HdsServer:
    def __init__(self, listen: str, fhir_url: str | None, endpoints: dict, proc: subprocess.Popen, log: Path):
        self.listen = listen
        # The FHIR service's URL when the manifests hold exactly one, else None (see `endpoints`).
        self.fhir_url = fhir_url.rstrip("/") if fhir_url else None
        self.endpoints = endpoints
        self.proc = proc
        self.log = log


def _stop(proc: subprocess.Popen) -> bool:
    """SIGTERM, then SIGKILL after SHUTDOWN_TIMEOUT_S. False when it had to be killed."""
    if proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(SHUTDOWN_TIMEOUT_S)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


def wait_ready(base: str, deadline: float) -> str | None:
    """Polls `/health/check` until 200; why not, if the deadline passes."""
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            r = requests.get(f"{base}/health/check", timeout=2)
            if r.status_code == 200:
                return None
            last = f"{r.status_code} {r.text}"
        except requests.ConnectionError as e:
            last = str(e)
        time.sleep(0.1)
    return f"was not ready (/health/check: {last})"


@contextmanager
def run_hds(
    manifests: Path,
    *,
    listen: str | None = None,
    check: Callable[[dict], str | None] | None = None,
    data_dir: Path | None = None,
) -> Iterator[HdsServer]:
    """Runs `hds up -f <manifests>` (embedded PostgreSQL, fresh data directory) until the block
    ends. Ready means the endpoints file is written; `check` may then refuse its content by
    returning why. `listen` (`127.0.0.1:<port>`) lets the caller know the service URLs before the
    manifests are written; by default a free port is taken. `data_dir` keeps the data (embedded
    PostgreSQL, credentials) for a later run; by default it is fresh and removed. The embedded
    MQTT broker, when a MedTechService asks for it, gets free ports. Failing to start or to stop
    cleanly is a test failure with the server's output, never a skip."""
    binary = find_binary()
    assert manifests.is_dir(), f"{manifests} is missing"
    listen = listen or f"127.0.0.1:{free_port()}"
    tmp = Path(tempfile.mkdtemp(prefix="hds-e2e-"))
    # Under root the embedded PostgreSQL runs as an unprivileged user, which must reach the dir.
    os.chmod(tmp, 0o755)
    keep = data_dir is not None
    data_dir = data_dir or tmp / "data"
    endpoints_file = tmp / "endpoints.json"
    log_path = tmp / "hds.log"
    log = open(log_path, "wb")
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    # An outside PostgreSQL URL would bypass the embedded database this test is meant to use.
    env.pop("HDS_UP_POSTGRES_URL", None)
    cmd = [
        str(binary),
        "up",
        "-f",
        str(manifests),
        "--listen",
        listen,
        "--data-dir",
        str(data_dir),
        "--endpoints-file",
        str(endpoints_file),
        "--mqtt-listen",
        f"127.0.0.1:{free_port_pair()}",
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(tmp))

    def fail_startup(why: str):
        _stop(proc)
        log.close()
        pytest.fail(
            f"`{' '.join(cmd)}` {why}\n----- output -----\n{_output(log_path)}", pytrace=False
        )

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    endpoints = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail_startup(f"exited with status {proc.returncode} before it was ready")
        if endpoints_file.exists():
            try:
                endpoints = json.loads(endpoints_file.read_text())
                break
            except json.JSONDecodeError:
                pass  # still being written
        time.sleep(0.1)
    if endpoints is None:
        fail_startup(f"did not write {endpoints_file} within {STARTUP_TIMEOUT_S} s")
    # Ready also means every MedTech service is subscribed to its broker (the health check says).
    why = wait_ready(f"http://{listen}", deadline)
    if why:
        fail_startup(why)
    if check is not None:
        why = check(endpoints)
        if why:
            fail_startup(why)

    fhir = [s for s in endpoints.get("services", []) if s.get("kind") == "FhirService"]
    server = HdsServer(listen, fhir[0]["url"] if len(fhir) == 1 else None, endpoints, proc, log_path)
    try:
        yield server
    finally:
        if not _stop(proc):
            log.close()
            pytest.fail(
                f"hds did not stop within {SHUTDOWN_TIMEOUT_S} s of SIGTERM\n"
                f"----- output -----\n{_output(log_path)}",
                pytrace=False,
            )
        log.close()
        if proc.returncode not in (0, -signal.SIGTERM):
            pytest.fail(
                f"hds exited with status {proc.returncode} after SIGTERM\n"
                f"----- output -----\n{_output(log_path)}",
                pytrace=False,
            )
        # The embedded PostgreSQL has stopped with hds; its files can go (unless kept).
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _examples_endpoints(endpoints: dict) -> str | None:
    fhir = [s for s in endpoints.get("services", []) if s.get("kind") == "FhirService"]
    if len(fhir) != 1 or fhir[0].get("name") != "fhir":
        return f"wrote unexpected endpoints: {endpoints!r}"
    if not endpoints.get("tokenUrl") or not endpoints.get("clients"):
        return f"wrote no tokenUrl and clients: {endpoints!r}"
    return None


@pytest.fixture(scope="session")
def hds_server():
    """`hds up -f examples/`, once per test session."""
    assert EXAMPLES.is_dir(), f"{EXAMPLES} is missing"
    with run_hds(EXAMPLES, check=_examples_endpoints) as server:
        yield server


@pytest.fixture(scope="session")
def base_url(hds_server) -> str:
    """The FHIR service's base URL, as written to the endpoints file (no trailing slash)."""
    return hds_server.fhir_url


def client_token(endpoints: dict, client_id: str = "hds-dev", **form) -> str:
    """A token from the Workspace issuer for a client listed in the endpoints file."""
    client = next(c for c in endpoints["clients"] if c["clientId"] == client_id)
    r = requests.post(
        endpoints["tokenUrl"],
        data={"grant_type": "client_credentials", **form},
        auth=(client["clientId"], client["clientSecret"]),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@pytest.fixture(scope="session")
def token(hds_server) -> str:
    """An access token of the dev client (FHIR Data Contributor, DICOM Data Owner)."""
    return client_token(hds_server.endpoints)


@pytest.fixture(scope="session")
def auth_headers(token) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def http(auth_headers) -> requests.Session:
    s = requests.Session()
    s.headers["Accept"] = FHIR_JSON
    s.headers.update(auth_headers)
    return s


@pytest.fixture
def unique() -> str:
    """A value unique to one test, for identifiers that must not collide across tests."""
    return uuid.uuid4().hex


def new_patient(system: str = "urn:e2e", value: str | None = None, family: str = "Doe") -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": system, "value": value or uuid.uuid4().hex}],
        "name": [{"family": family, "given": ["Jane"]}],
        "gender": "female",
        "birthDate": "1980-01-02",
    }


def create(http: requests.Session, base_url: str, resource: dict) -> dict:
    r = http.post(f"{base_url}/{resource['resourceType']}", json=resource, headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 201, r.text
    return r.json()


def assert_outcome(r: requests.Response, status: int) -> dict:
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body.get("issue"), body
    return body


ADMIN_URL = os.environ.get("HDS_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


class SoloFhir:
    """`hds fhir --config FILE`: one FHIR service (auth off) on a fresh database of the shared
    PostgreSQL, which can be killed and started again on the same data."""

    def __init__(self, tmp_path: Path, export_options: str = "", export_url: str | None = None,
                 import_url: str | None = None, env: dict | None = None):
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, **(env or {})}
        export_url = export_url or f"file://{tmp_path / 'exports'}"
        import_url = import_url or f"file://{tmp_path / 'imports'}"
        self.db = f"hds_test_{uuid.uuid4().hex}"
        subprocess.run(["psql", ADMIN_URL, "-qc", f'create database "{self.db}"'], check=True)
        server, _ = ADMIN_URL.rsplit("/", 1)
        self.db_url = f"{server}/{self.db}"
        port = free_port()
        self.config = tmp_path / "fhir.yaml"
        self.config.write_text(
            "name: solo\n"
            "workspace: demo\n"
            f"listen: 127.0.0.1:{port}\n"
            f"postgres: {{url: '{self.db_url}', poolSize: 4}}\n"
            "auth: {mode: none}\n"
            f"export: {{{export_options}storageUrl: '{export_url}'}}\n"
            f"import: {{enabled: true, storageUrl: '{import_url}'}}\n"
        )
        self.imports = tmp_path / "imports"
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = tmp_path / "hds.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [str(find_binary()), "fhir", "--config", str(self.config)], stdout=log, stderr=subprocess.STDOUT,
            env=self.env,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if requests.get(f"{self.base}/health/check", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            assert self.proc.poll() is None, self.log_path.read_text()
            time.sleep(0.2)
        self.proc.kill()
        pytest.fail("hds fhir did not become healthy:\n" + self.log_path.read_text())

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind, as when a node dies."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        subprocess.run(["psql", ADMIN_URL, "-qc", f'drop database if exists "{self.db}" with (force)'], check=False)


@pytest.fixture()
def solo_fhir(tmp_path):
    svc = SoloFhir(tmp_path)
    svc.start()
    yield svc
    svc.close()


@pytest.fixture()
def fhir_service(solo_fhir):
    yield solo_fhir.base, solo_fhir.proc, solo_fhir.log_path
