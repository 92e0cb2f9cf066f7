"""A FhirService trusting an OpenID provider that no one here wrote: panva's `oidc-provider` (npm,
pinned in e2e/oidc/package.json), run on loopback by e2e/oidc/provider.mjs for the
client-credentials grant with RFC 8707 resource indicators, so it issues RFC 9068 JWT access
tokens (RS256) whose `aud` is the requested resource and whose `roles` are the client's.

The same scenarios run against the Workspace's own issuer (ES256), which the service always
trusts too. One `hds up` serves both: a Workspace declaring the same clients as the provider (and
a signing key from a Secret, so the test can sign what the issuer never would), the service under
test, and a sibling service of the same Workspace whose URL is "another audience".
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conftest import (
    FHIR_JSON,
    REPO,
    SHUTDOWN_TIMEOUT_S,
    HdsServer,
    assert_outcome,
    free_port,
    new_patient,
    run_hds,
)

OIDC_DIR = REPO / "e2e" / "oidc"
NODE_STARTUP_TIMEOUT_S = 30
WORKSPACE = "oidc-e2e"
SERVICE = "records"  # the service under test
SIBLING = "sibling"  # another service of the same Workspace, trusting the same issuers

# The same clients at both issuers. `narrow` has a Contributor's roles, but its SMART scope
# allows reading Patients only.
CLIENTS = {
    "reader": {"roles": ["FHIR Data Reader"], "scopes": []},
    "writer": {"roles": ["FHIR Data Contributor"], "scopes": []},
    "narrow": {"roles": ["FHIR Data Contributor"], "scopes": ["system/Patient.read"]},
}
ISSUERS = ["oidc-provider", "workspace"]


# ---------------------------------------------------------------------------------------------
# The OpenID provider (node)


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-20000:]
    except OSError as e:  # pragma: no cover
        return f"<cannot read {path}: {e}>"


@contextmanager
def run_oidc_provider(config: dict, workdir: Path) -> Iterator[dict]:
    """Runs e2e/oidc/provider.mjs with `config` until the block ends; yields its ready line
    (issuer, port, kid, alg and, when asked for, the private signing JWK)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("`node` is not on PATH (scripts/lib.sh ensure_node installs it)", pytrace=False)
    if not (OIDC_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        pytest.fail(
            f"{OIDC_DIR}/node_modules is missing: run `npm ci --prefix e2e/oidc` "
            "(scripts/test.sh does, through ensure_npm_deps)",
            pytrace=False,
        )
    config_file = workdir / "oidc-provider.json"
    config_file.write_text(json.dumps(config))
    os.chmod(config_file, 0o600)  # client secrets
    log_path = workdir / "oidc-provider.log"
    log = open(log_path, "wb")
    cmd = [node, str(OIDC_DIR / "provider.mjs"), "--config-file", str(config_file)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, cwd=str(OIDC_DIR))
    out = b""

    def stop() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(SHUTDOWN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
        log.close()

    def fail(why: str):
        stop()
        pytest.fail(
            f"`{' '.join(cmd)}` {why}\n----- stdout -----\n{out.decode(errors='replace')}"
            f"\n----- stderr -----\n{_tail(log_path)}",
            pytrace=False,
        )

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + NODE_STARTUP_TIMEOUT_S
    while b"\n" not in out:
        left = deadline - time.monotonic()
        if left <= 0:
            fail(f"printed no ready line within {NODE_STARTUP_TIMEOUT_S} s")
        if sel.select(timeout=min(left, 0.5)):
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                proc.wait(5)
                fail(f"exited with status {proc.returncode} before it was ready")
            out += chunk
        elif proc.poll() is not None:
            fail(f"exited with status {proc.returncode} before it was ready")
    sel.close()
    try:
        ready = json.loads(out.split(b"\n", 1)[0])
    except json.JSONDecodeError:
        fail("printed a ready line that is not JSON")
    if not str(ready.get("issuer", "")).startswith("http://127.0.0.1:"):
        fail(f"printed an unexpected ready line: {ready!r}")
    try:
        yield ready
    finally:
        stop()
        if proc.returncode not in (0, -signal.SIGTERM):
            pytest.fail(
                f"oidc-provider exited with status {proc.returncode} after SIGTERM\n"
                f"----- stderr -----\n{_tail(log_path)}",
                pytrace=False,
            )


# ---------------------------------------------------------------------------------------------
# The two issuers, as the tests see them


@dataclass
class Issuer:
    name: str
    issuer: str
    token_url: str
    alg: str
    kid: str
    # The issuer's own private key: lets the test sign tokens the issuer would never issue.
    key: object = field(repr=False)
    secrets: dict = field(repr=False)

    def request(self, client_id: str, **form) -> requests.Response:
        """A client-credentials request, authenticated with client_secret_basic."""
        return requests.post(
            self.token_url,
            data={"grant_type": "client_credentials", **form},
            auth=(client_id, self.secrets[client_id]),
            timeout=10,
        )

    def token(self, client_id: str, **form) -> str:
        r = self.request(client_id, **form)
        assert r.status_code == 200, f"{self.name} refused a token to {client_id} ({form}): {r.status_code} {r.text}"
        body = r.json()
        assert body["token_type"].lower() == "bearer", body
        return body["access_token"]

    def sign(self, claims: dict, key=None, kid: str | None = None) -> str:
        """A JWT access token with this issuer's `iss`, signed by `key` (default: its own)."""
        return jwt.encode(
            {"iss": self.issuer, **claims},
            key if key is not None else self.key,
            algorithm=self.alg,
            headers={"typ": "at+jwt", "kid": kid or self.kid},
        )


@dataclass
class Stack:
    hds: HdsServer
    url: str
    sibling_url: str
    issuers: dict


def _discovery(issuer: str) -> dict:
    r = requests.get(f"{issuer.rstrip('/')}/.well-known/openid-configuration", timeout=10)
    assert r.status_code == 200, f"discovery of {issuer}: {r.status_code} {r.text}"
    disc = r.json()
    assert disc["issuer"] == issuer, disc
    return disc


def _only_kid(jwks_uri: str) -> str:
    keys = requests.get(jwks_uri, timeout=10).json()["keys"]
    assert len(keys) == 1, keys
    # Public parts only, whatever the test was handed.
    assert not {"d", "p", "q", "dp", "dq", "qi"} & keys[0].keys(), keys[0]
    return keys[0]["kid"]


def _manifests(dir: Path, authority: str, urls: dict, secrets_: dict, signing_pem: str) -> None:
    q = json.dumps  # a JSON string is a YAML scalar
    clients = "".join(
        f"""
      - clientId: {client_id}
        secretRef: {{name: {WORKSPACE}-clients, key: {client_id}}}
        roles: {q(c["roles"])}
        scopes: {q(c["scopes"])}"""
        for client_id, c in CLIENTS.items()
    )
    (dir / "workspace.yaml").write_text(
        f"""apiVersion: hds.dev/v1alpha1
kind: Workspace
metadata: {{name: {WORKSPACE}, namespace: default}}
spec:
  identity:
    issuer:
      signingKeySecretRef: {{name: {WORKSPACE}-signing-key}}
      tokenLifetimeSeconds: 3600
    clients:{clients}
---
apiVersion: v1
kind: Secret
metadata: {{name: {WORKSPACE}-clients, namespace: default}}
type: Opaque
stringData: {q(secrets_)}
---
apiVersion: v1
kind: Secret
metadata: {{name: {WORKSPACE}-signing-key, namespace: default}}
type: Opaque
stringData:
  signingKey: {q(signing_pem)}
"""
    )
    for name, url in urls.items():
        (dir / f"{name}.yaml").write_text(
            f"""apiVersion: hds.dev/v1alpha1
kind: FhirService
metadata: {{name: {name}, namespace: default}}
spec:
  workspaceRef: {{name: {WORKSPACE}}}
  kind: fhir-R4
  authentication:
    authority: {q(authority)}
    audience: {q(url)}
"""
        )


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    listen = f"127.0.0.1:{free_port()}"
    urls = {SERVICE: f"http://{listen}/fhir/{SERVICE}", SIBLING: f"http://{listen}/fhir/{SIBLING}"}
    client_secrets = {client_id: secrets.token_urlsafe(24) for client_id in CLIENTS}
    ws_key = ec.generate_private_key(ec.SECP256R1())
    ws_pem = ws_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    tmp = Path(tempfile.mkdtemp(prefix="hds-e2e-oidc-"))
    provider_config = {
        "resources": list(urls.values()),
        "clients": [
            {"clientId": cid, "clientSecret": client_secrets[cid], **c} for cid, c in CLIENTS.items()
        ],
        "rolesClaim": "roles",
        "alg": "RS256",
        "accessTokenTTL": 3600,
        "revealSigningKey": True,
    }
    try:
        with run_oidc_provider(provider_config, tmp) as ready:
            authority = ready["issuer"]
            manifests = tmp / "manifests"
            manifests.mkdir()
            _manifests(manifests, authority, urls, client_secrets, ws_pem)

            def check(endpoints: dict) -> str | None:
                got = {s["name"]: s["url"].rstrip("/") for s in endpoints.get("services", [])
                       if s.get("kind") == "FhirService"}
                if got != urls:
                    return f"serves {got!r}, not the services {urls!r}"
                if [w.get("name") for w in endpoints.get("workspaces", [])] != [WORKSPACE]:
                    return f"lists unexpected workspaces: {endpoints!r}"
                return None

            with run_hds(manifests, listen=listen, check=check) as hds:
                disc = _discovery(authority)
                provider_kid = _only_kid(disc["jwks_uri"])
                assert provider_kid == ready["kid"], (provider_kid, ready)
                (ws,) = hds.endpoints["workspaces"]
                ws_disc = _discovery(ws["issuer"])
                assert ws_disc["token_endpoint"] == ws["tokenUrl"], ws_disc
                issuers = {
                    "oidc-provider": Issuer(
                        name="oidc-provider",
                        issuer=authority,
                        token_url=disc["token_endpoint"],
                        alg=ready["alg"],
                        kid=provider_kid,
                        key=jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(ready["signingKey"])),
                        secrets=client_secrets,
                    ),
                    "workspace": Issuer(
                        name="workspace",
                        issuer=ws["issuer"],
                        token_url=ws["tokenUrl"],
                        alg="ES256",
                        kid=_only_kid(ws_disc["jwks_uri"]),
                        key=ws_key,
                        secrets=client_secrets,
                    ),
                }
                yield Stack(hds=hds, url=urls[SERVICE], sibling_url=urls[SIBLING], issuers=issuers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(params=ISSUERS)
def issuer(request, stack) -> Issuer:
    return stack.issuers[request.param]


# ---------------------------------------------------------------------------------------------
# Helpers


def _headers(token: str, **more) -> dict:
    return {"Accept": FHIR_JSON, "Authorization": f"Bearer {token}", **more}


def get(url: str, token: str) -> requests.Response:
    return requests.get(url, headers=_headers(token), timeout=10)


def post(url: str, token: str, resource: dict) -> requests.Response:
    return requests.post(
        f"{url}/{resource['resourceType']}",
        json=resource,
        headers=_headers(token, **{"Content-Type": FHIR_JSON}),
        timeout=10,
    )


def unverified(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def assert_refused(r: requests.Response, reason: str) -> None:
    """401 with an RFC 6750 challenge naming invalid_token, for `reason` (a fragment of the
    error description), and an OperationOutcome."""
    assert r.status_code == 401, f"expected 401, got {r.status_code}: {r.text}"
    challenge = r.headers.get("WWW-Authenticate", "")
    assert challenge.startswith('Bearer error="invalid_token"'), challenge
    assert reason in challenge, f"expected '{reason}' in {challenge!r}"
    assert r.json()["resourceType"] == "OperationOutcome", r.text


def observation() -> dict:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
    }


# ---------------------------------------------------------------------------------------------
# Scenarios, each against both issuers


def test_a_reader_reads_and_cannot_write(stack, issuer):
    token = issuer.token("reader", resource=stack.url)
    claims = unverified(token)
    assert claims["iss"] == issuer.issuer
    assert claims["aud"] == stack.url
    assert claims["roles"] == ["FHIR Data Reader"]
    assert "scope" not in claims, claims
    r = get(f"{stack.url}/Patient", token)
    assert r.status_code == 200, r.text
    assert r.json()["resourceType"] == "Bundle"
    body = assert_outcome(post(stack.url, token, new_patient()), 403)
    assert any(i.get("code") == "forbidden" for i in body["issue"]), body


def test_a_contributor_writes(stack, issuer):
    token = issuer.token("writer", resource=stack.url)
    assert unverified(token)["roles"] == ["FHIR Data Contributor"]
    patient = new_patient(value=uuid.uuid4().hex)
    r = post(stack.url, token, patient)
    assert r.status_code == 201, r.text
    created = r.json()
    back = get(f"{stack.url}/Patient/{created['id']}", token)
    assert back.status_code == 200, back.text
    assert back.json()["identifier"] == patient["identifier"]


def test_a_token_for_another_audience_is_refused(stack, issuer):
    # Both issuers refuse to mint a token for a resource they do not know (RFC 8707).
    unknown = issuer.request("writer", resource="https://elsewhere.example/fhir")
    assert unknown.status_code == 400, unknown.text
    assert unknown.json()["error"] == "invalid_target", unknown.text
    # A token for the sibling service is good there and refused here.
    token = issuer.token("writer", resource=stack.sibling_url)
    assert unverified(token)["aud"] == stack.sibling_url
    there = get(f"{stack.sibling_url}/Patient", token)
    assert there.status_code == 200, there.text
    assert_refused(get(f"{stack.url}/Patient", token), "(aud)")
    assert_refused(post(stack.url, token, new_patient()), "(aud)")


def test_a_scope_narrowed_token_reads_patients_only(stack, issuer):
    # The writer puts an Observation there, so that refusing to show it is not an empty result.
    writer = issuer.token("writer", resource=stack.url)
    assert post(stack.url, writer, observation()).status_code == 201
    r = issuer.request("narrow", resource=stack.url, scope="system/Patient.read")
    assert r.status_code == 200, r.text
    assert r.json().get("scope") == "system/Patient.read", r.json()
    token = r.json()["access_token"]
    claims = unverified(token)
    # The roles would allow everything; the scope must narrow them.
    assert claims["roles"] == ["FHIR Data Contributor"] and claims["scope"] == "system/Patient.read"
    patients = get(f"{stack.url}/Patient", token)
    assert patients.status_code == 200, patients.text
    assert_outcome(get(f"{stack.url}/Observation", token), 403)
    assert_outcome(post(stack.url, token, new_patient()), 403)


def test_expired_and_foreign_tokens_are_refused(stack, issuer):
    now = int(time.time())
    claims = {"aud": stack.url, "sub": "reader", "client_id": "reader", "roles": ["FHIR Data Reader"],
              "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
    # Signed with the issuer's own key and valid: accepted, so what follows fails for its reason.
    ok = get(f"{stack.url}/Patient", issuer.sign(claims))
    assert ok.status_code == 200, ok.text
    # Expired an hour ago (far past the leeway), signed by the issuer's own key.
    expired = issuer.sign({**claims, "iat": now - 7200, "exp": now - 3600})
    assert_refused(get(f"{stack.url}/Patient", expired), "expired")
    # A key of the same kind that the issuer does not publish: under its kid, and under another.
    fresh = rsa.generate_private_key(public_exponent=65537, key_size=2048) if issuer.alg.startswith(("RS", "PS")) \
        else ec.generate_private_key(ec.SECP256R1())
    assert_refused(get(f"{stack.url}/Patient", issuer.sign(claims, key=fresh)), "signature")
    unknown_kid = uuid.uuid4().hex
    assert_refused(get(f"{stack.url}/Patient", issuer.sign(claims, key=fresh, kid=unknown_kid)),
                   f"no signing key with kid '{unknown_kid}'")
