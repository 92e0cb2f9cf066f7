"""The Workspace's own issuer under `hds up`: discovery, JWKS, the client-credentials grant, and
the FHIR service trusting what it issues. PyJWT checks the tokens independently of our code."""

from __future__ import annotations

import os
import stat

import jwt
import requests

from conftest import FHIR_JSON, client_token


def issuer_of(hds_server) -> dict:
    (ws,) = hds_server.endpoints["workspaces"]
    return ws


def test_endpoints_file_lists_the_token_url_and_clients_privately(hds_server):
    e = hds_server.endpoints
    ws = issuer_of(hds_server)
    assert ws["name"] == "demo"
    assert e["tokenUrl"] == ws["tokenUrl"] == f"http://{hds_server.listen}/workspaces/demo/oauth2/token"
    ids = [c["clientId"] for c in e["clients"]]
    # The dev client first, then the example Workspace's client whose Secret is among the files.
    assert ids == ["hds-dev", "demo-app"]
    assert e["clients"][1]["clientSecret"] == "change-me"
    assert e["clients"][1]["roles"] == ["FHIR Data Contributor", "DICOM Data Owner"]
    files = [p for p in hds_server.log.parent.iterdir() if p.name == "endpoints.json"]
    assert files and stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600


def test_discovery_and_jwks_verify_issued_tokens(hds_server, base_url):
    ws = issuer_of(hds_server)
    disc = requests.get(f"{ws['issuer']}/.well-known/openid-configuration", timeout=10).json()
    assert disc["issuer"] == ws["issuer"]
    assert disc["token_endpoint"] == ws["tokenUrl"]
    assert "client_credentials" in disc["grant_types_supported"]
    token = client_token(hds_server.endpoints, "demo-app")
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    keys = jwt.PyJWKClient(disc["jwks_uri"])
    key = keys.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["ES256"], audience=base_url, issuer=ws["issuer"])
    assert claims["client_id"] == claims["sub"] == "demo-app"
    assert claims["roles"] == ["FHIR Data Contributor", "DICOM Data Owner"]
    assert claims["exp"] - claims["iat"] == 3600


def test_the_fhir_service_requires_and_accepts_workspace_tokens(hds_server, base_url):
    r = requests.get(f"{base_url}/Patient", headers={"Accept": FHIR_JSON}, timeout=10)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json()["resourceType"] == "OperationOutcome"
    # Secret in the form body (client_secret_post), audience named by RFC 8707's resource.
    app = next(c for c in hds_server.endpoints["clients"] if c["clientId"] == "demo-app")
    t = requests.post(
        hds_server.endpoints["tokenUrl"],
        data={"grant_type": "client_credentials", "client_id": "demo-app",
              "client_secret": app["clientSecret"], "resource": base_url},
        timeout=10,
    )
    assert t.status_code == 200, t.text
    assert t.headers["Cache-Control"] == "no-store"
    body = t.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    r = requests.get(f"{base_url}/Patient", headers={"Accept": FHIR_JSON,
                     "Authorization": f"Bearer {body['access_token']}"}, timeout=10)
    assert r.status_code == 200, r.text
    # The metadata stays public, as FHIR clients read it before they authenticate.
    assert requests.get(f"{base_url}/metadata", timeout=10).status_code == 200


def test_the_token_endpoint_refuses_with_oauth_errors(hds_server):
    url = hds_server.endpoints["tokenUrl"]
    wrong = requests.post(url, data={"grant_type": "client_credentials"}, auth=("hds-dev", "wrong"), timeout=10)
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    dev = hds_server.endpoints["clients"][0]
    creds = (dev["clientId"], dev["clientSecret"])
    grant = requests.post(url, data={"grant_type": "password"}, auth=creds, timeout=10)
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    target = requests.post(url, data={"grant_type": "client_credentials", "resource": "https://elsewhere.example"},
                           auth=creds, timeout=10)
    assert target.status_code == 400 and target.json()["error"] == "invalid_target"
    as_json = requests.post(url, json={"grant_type": "client_credentials"}, auth=creds, timeout=10)
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"


def test_a_symmetric_token_naming_the_issuer_is_refused(hds_server, base_url):
    # Anyone can sign HS256 with a made-up key; naming the trusted issuer must not be enough.
    other = jwt.encode({"iss": issuer_of(hds_server)["issuer"], "aud": base_url}, "k" * 32, algorithm="HS256")
    r = requests.get(f"{base_url}/Patient", headers={"Authorization": f"Bearer {other}"}, timeout=10)
    assert r.status_code == 401
    assert "invalid_token" in r.headers["WWW-Authenticate"]
