"""End-to-end fixtures: run the real `hds up -f examples/` once per test session.

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
from pathlib import Path

import pytest
import requests

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


def _output(log_path: Path) -> str:
    try:
        return log_path.read_text(errors="replace")[-20000:]
    except OSError as e:  # pragma: no cover
        return f"<cannot read {log_path}: {e}>"


class HdsServer:
    def __init__(self, listen: str, fhir_url: str, endpoints: dict, proc: subprocess.Popen, log: Path):
        self.listen = listen
        self.fhir_url = fhir_url.rstrip("/")
        self.endpoints = endpoints
        self.proc = proc
        self.log = log


@pytest.fixture(scope="session")
def hds_server():
    binary = find_binary()
    assert EXAMPLES.is_dir(), f"{EXAMPLES} is missing"
    port = free_port()
    listen = f"127.0.0.1:{port}"
    tmp = Path(tempfile.mkdtemp(prefix="hds-e2e-"))
    # Under root the embedded PostgreSQL runs as an unprivileged user, which must reach the dir.
    os.chmod(tmp, 0o755)
    data_dir = tmp / "data"
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
        str(EXAMPLES),
        "--listen",
        listen,
        "--data-dir",
        str(data_dir),
        "--endpoints-file",
        str(endpoints_file),
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(tmp))

    def fail_startup(why: str):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(SHUTDOWN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
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

    fhir = [s for s in endpoints.get("services", []) if s.get("kind") == "FhirService"]
    if len(fhir) != 1 or fhir[0].get("name") != "fhir":
        fail_startup(f"wrote unexpected endpoints: {endpoints!r}")

    server = HdsServer(listen, fhir[0]["url"], endpoints, proc, log_path)
    try:
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(SHUTDOWN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
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
        # The embedded PostgreSQL has stopped with hds; its files can go.
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def base_url(hds_server) -> str:
    """The FHIR service's base URL, as written to the endpoints file (no trailing slash)."""
    return hds_server.fhir_url


@pytest.fixture(scope="session")
def http() -> requests.Session:
    s = requests.Session()
    s.headers["Accept"] = FHIR_JSON
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
