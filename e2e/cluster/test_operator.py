"""The operator on a real cluster (issue 8, "Proof"): the chart's CRDs and elected operator, a
Workspace with a FHIR, a DICOM and a MedTech service that become Ready and answer through
`kubectl port-forward`, a config change that rolls the pods, deletion under both database
policies, a missing Secret, CloudNativePG absent, and the CEL rules the apiserver enforces.

Run by e2e/cluster/run.sh (see e2e/cluster/README.md); the tests run in file order and share
one namespace, the Workspace `demo` and its services `fhir`, `dicom` and `medtech` (the `stack`
fixture). Tests that delete or break something use services of their own.
"""

from __future__ import annotations

import json
import uuid

import pydicom
import pytest
import requests
import yaml
from dicomweb_client.api import DICOMwebClient
from fhirclient import client as fhirclient
from fhirclient.models.patient import Patient
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from conftest import (
    CHART_CRDS,
    CONFIG_HASH,
    CRD_NAMES,
    FHIR_JSON,
    FINALIZER,
    OPERATOR_DEPLOYMENT,
    OPERATOR_LEASE,
    OPERATOR_NAMESPACE,
    RESOURCE,
    SERVICE_KINDS,
    WORKSPACE,
    base_through,
    condition,
    database_exists,
    database_of,
    diagnostics,
    dicom_service,
    expected_databases,
    fhir_service,
    get,
    get_list,
    get_or_none,
    kubectl,
    kubectl_run,
    operator_selector,
    owned_by,
    pod_logs,
    poll,
    port_forward,
    psql,
    service_url,
    token_claims,
    try_apply,
    apply,
    wait_condition,
    wait_gone,
    wait_ready,
)


# ----------------------------------------------------------------------------------------------
# 1. The chart: CRDs and an operator with two replicas, one of them the leader


def _chart_crds() -> dict[str, dict]:
    """The CRDs in charts/hds/crds/, by name."""
    files = sorted(CHART_CRDS.glob("*.yaml")) + sorted(CHART_CRDS.glob("*.yml"))
    assert files, f"{CHART_CRDS} holds no CRD files"
    crds = {}
    for f in files:
        for doc in yaml.safe_load_all(f.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                crds[doc["metadata"]["name"]] = doc
    return crds


def _validations(crd: dict) -> set[tuple[str, str, str, str]]:
    """Every CEL rule of a CRD: (version, schema path, rule, message)."""
    found: set[tuple[str, str, str, str]] = set()

    def walk(version: str, path: str, node: dict) -> None:
        for v in node.get("x-kubernetes-validations") or []:
            found.add((version, path, v["rule"], v.get("message", "")))
        for key, child in (node.get("properties") or {}).items():
            walk(version, f"{path}.{key}", child)
        if isinstance(node.get("items"), dict):
            walk(version, f"{path}[]", node["items"])
        if isinstance(node.get("additionalProperties"), dict):
            walk(version, f"{path}{{}}", node["additionalProperties"])

    for v in crd["spec"]["versions"]:
        walk(v["name"], "", v["schema"]["openAPIV3Schema"])
    return found


def _printer_columns(crd: dict) -> dict[str, list[tuple[str, str, str]]]:
    return {
        v["name"]: [(c["name"], c["jsonPath"], c["type"]) for c in v.get("additionalPrinterColumns") or []]
        for v in crd["spec"]["versions"]
    }


def test_chart_installs_the_crds_and_two_operator_replicas_of_which_one_leads(operator):
    chart = _chart_crds()
    missing = set(CRD_NAMES) - set(chart)
    assert not missing, f"the chart's crds/ lacks {sorted(missing)}"
    for name in CRD_NAMES:
        live = json.loads(kubectl("get", "crd", name, "-o", "json"))
        established = condition(live, "Established")
        assert established and established["status"] == "True", f"CRD {name} is not Established: {live.get('status')}"
        # Helm installs crds/ but never upgrades them: a stale CRD from an earlier install would
        # show here, as rules or columns that differ from the chart's.
        assert _validations(live) == _validations(chart[name]), f"CRD {name}'s CEL rules differ from the chart's"
        assert _printer_columns(live) == _printer_columns(chart[name]), f"CRD {name}'s printer columns differ"

    # Available (the fixture waited for it), with both replicas ready.
    assert operator["spec"]["replicas"] == 2, operator["spec"]
    dep = poll("both operator replicas to be ready",
               lambda: (d := get("deployment", OPERATOR_DEPLOYMENT, OPERATOR_NAMESPACE))
               and (d.get("status") or {}).get("readyReplicas") == 2 and d,
               timeout=120)
    assert condition(dep, "Available")["status"] == "True"

    pods = [p["metadata"]["name"] for p in get_list("pods", OPERATOR_NAMESPACE, operator_selector())
            if not p["metadata"].get("deletionTimestamp") and p["status"].get("phase") == "Running"]
    assert len(pods) == 2, f"expected two running operator pods, found {pods}"

    def holder():
        r = kubectl_run("get", "leases.coordination.k8s.io", OPERATOR_LEASE, "-n", OPERATOR_NAMESPACE,
                        "-o", "jsonpath={.spec.holderIdentity}")
        return r.stdout.strip() if r.returncode == 0 else None

    identity = poll(f"Lease {OPERATOR_NAMESPACE}/{OPERATOR_LEASE} to have a holder", holder, timeout=60)
    holders = [p for p in pods if identity == p or p in identity]
    assert len(holders) == 1, f"the Lease's holder {identity!r} should name exactly one of the pods {pods}"


# ----------------------------------------------------------------------------------------------
# 2. The Workspace and its services: Ready, with status, printer columns and their objects


def _workspace_members(namespace: str) -> set[tuple[str, str]]:
    return {
        (kind, item["metadata"]["name"])
        for kind in SERVICE_KINDS
        for item in get_list(RESOURCE[kind], namespace)
        if item["spec"]["workspaceRef"]["name"] == WORKSPACE
    }


def test_workspace_and_services_become_ready_with_status_and_objects(stack):
    ns = stack.ns.name

    # `kubectl get fhirservices` shows the printer columns.
    out = kubectl("get", RESOURCE["FhirService"], "-n", ns)
    lines = out.splitlines()
    assert lines and lines[0].split() == ["NAME", "READY", "URL", "AGE"], out
    rows = {line.split()[0]: line.split() for line in lines[1:] if line.strip()}
    assert "fhir" in rows and rows["fhir"][1:3] == ["True", service_url("fhir", ns)], out

    for kind in SERVICE_KINDS:
        name = stack.objects[kind]["metadata"]["name"]
        obj = stack.get(kind, name)
        generation = obj["metadata"]["generation"]
        for type_ in ("Ready", "Progressing", "Degraded"):
            c = condition(obj, type_)
            assert c is not None, f"{kind} {name} has no {type_} condition: {obj.get('status')}"
            assert c.get("observedGeneration") == generation, f"{kind} {name} {type_}: {c} (generation {generation})"
            assert c.get("reason"), f"{kind} {name} {type_} has no reason: {c}"
        assert condition(obj, "Ready")["status"] == "True"
        assert condition(obj, "Degraded")["status"] == "False", obj["status"]
        assert obj["status"].get("url") == service_url(name, ns), obj["status"]
        assert obj["status"].get("internalUrl") == service_url(name, ns), obj["status"]
        assert FINALIZER in (obj["metadata"].get("finalizers") or []), obj["metadata"]

        # What the operator made of it, each owned by the resource.
        dep = get("deployment", name, ns)
        assert owned_by(dep, kind, name), dep["metadata"]
        assert (dep.get("status") or {}).get("readyReplicas") == dep["spec"]["replicas"], dep.get("status")
        assert CONFIG_HASH in (dep["spec"]["template"]["metadata"].get("annotations") or {})
        svc = get("service", name, ns)
        assert owned_by(svc, kind, name)
        assert 8080 in [p["port"] for p in svc["spec"]["ports"]], svc["spec"]
        assert owned_by(get("serviceaccount", name, ns), kind, name)
        assert [c for c in get_list("configmaps", ns) if owned_by(c, kind, name)], f"no ConfigMap owned by {kind} {name}"
        if kind != "MedTechService":
            db = get("secret", f"{name}-db", ns)
            assert "url" in (db.get("data") or {}), f"Secret {name}-db has no key url"
            assert owned_by(db, kind, name), db["metadata"]
        # Every Secret the pods mount exists (the database URL, Workspace client secrets).
        for volume in dep["spec"]["template"]["spec"].get("volumes") or []:
            if volume.get("secret"):
                assert get_or_none("secret", volume["secret"]["secretName"], ns), \
                    f"{kind} {name} mounts the missing Secret {volume['secret']['secretName']}"

    # The Workspace: its issuer, signing key, service identities, and the overview of services.
    ws = stack.get("Workspace", WORKSPACE)
    ready = condition(ws, "Ready")
    assert ready["status"] == "True" and ready.get("observedGeneration") == ws["metadata"]["generation"], ready
    assert ws["status"].get("issuer"), ws["status"]
    get("deployment", f"{WORKSPACE}-issuer", ns)
    issuer_svc = get("service", f"{WORKSPACE}-issuer", ns)
    assert 8080 in [p["port"] for p in issuer_svc["spec"]["ports"]], issuer_svc["spec"]
    get("secret", f"{WORKSPACE}-signing-key", ns)
    generated = [s["metadata"]["name"] for s in get_list("secrets", ns)
                 if s["metadata"]["name"].startswith(f"{WORKSPACE}-client-")]
    assert generated, f"no {WORKSPACE}-client-<clientId> Secret for the services' identities"

    members = _workspace_members(ns)
    assert {(k, stack.objects[k]["metadata"]["name"]) for k in SERVICE_KINDS} <= members

    def overview():
        rows = (stack.get("Workspace", WORKSPACE).get("status") or {}).get("services") or []
        listed = {(r["kind"], r["name"]) for r in rows}
        return rows if listed == members and all(r.get("ready") for r in rows) else None

    rows = poll(f"the Workspace to list {sorted(members)} as ready", overview, timeout=120,
                diagnose=lambda: diagnostics(ns, (RESOURCE["Workspace"], WORKSPACE)))
    assert len(rows) == len(members) == 3, rows
    for r in rows:
        if r["kind"] in ("FhirService", "DicomService"):
            assert r.get("url") == service_url(r["name"], ns), r


# ----------------------------------------------------------------------------------------------
# 3. FHIR through a Workspace token


def test_fhir_creates_and_reads_a_patient_with_a_workspace_token(stack, app_token):
    ns = stack.ns.name
    status_url = stack.get("FhirService", "fhir")["status"]["url"]
    unique = uuid.uuid4().hex
    with port_forward(ns, "fhir") as fwd:
        base = base_through(fwd, status_url)
        server = fhirclient.FHIRClient(settings={"app_id": "hds-e2e-cluster", "api_base": base}).server
        server.session.headers.update({"Authorization": f"Bearer {app_token}"})
        patient = Patient({
            "identifier": [{"system": "urn:e2e:cluster", "value": unique}],
            "name": [{"family": "Cluster", "given": ["Kim"]}],
            "gender": "female",
            "birthDate": "1980-01-02",
        })
        try:
            created = patient.create(server)
        except Exception as e:  # fhirclient raises its own exceptions for 401/403/404
            response = getattr(e, "response", None)
            pytest.fail(
                f"creating a Patient failed: {e!r} "
                f"{getattr(response, 'status_code', '')} {getattr(response, 'text', '')}\n"
                f"token claims: {token_claims(app_token)}\n{pod_logs(ns, 'fhir')}",
                pytrace=False,
            )
        pid = created["id"]
        assert created["meta"]["versionId"] == "1", created

        read = Patient.read(pid, server)
        assert read.id == pid
        assert read.identifier[0].value == unique
        assert read.name[0].family == "Cluster"

        auth = {"Authorization": f"Bearer {app_token}", "Accept": FHIR_JSON}
        r = requests.get(f"{base}/Patient", params={"identifier": f"urn:e2e:cluster|{unique}"}, headers=auth, timeout=30)
        assert r.status_code == 200, r.text
        assert [e["resource"]["id"] for e in r.json().get("entry", [])] == [pid]

        # No token, no data.
        r = requests.get(f"{base}/Patient/{pid}", headers={"Accept": FHIR_JSON}, timeout=30)
        assert r.status_code == 401, f"{r.status_code} {r.text}"


# ----------------------------------------------------------------------------------------------
# 4. DICOMweb: STOW and QIDO, and the sync into the FhirService


def _fresh_ct() -> pydicom.Dataset:
    """pydicom's CT_small.dcm under new UIDs."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _store(stack, token: str, ds: pydicom.Dataset) -> None:
    ns = stack.ns.name
    status_url = stack.get("DicomService", "dicom")["status"]["url"]
    with port_forward(ns, "dicom") as fwd:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        client = DICOMwebClient(url=base_through(fwd, status_url), session=session)
        client.store_instances([ds])

        studies = client.search_for_studies(search_filters={"StudyInstanceUID": ds.StudyInstanceUID})
        assert [s["0020000D"]["Value"][0] for s in studies] == [ds.StudyInstanceUID], studies
        instances = client.search_for_instances(study_instance_uid=ds.StudyInstanceUID)
        assert [i["00080018"]["Value"][0] for i in instances] == [ds.SOPInstanceUID], instances


def test_dicom_stores_an_instance_and_finds_it(stack, app_token):
    _store(stack, app_token, _fresh_ct())


def test_dicom_fhir_sync_writes_the_imaging_study(stack, app_token):
    """The example's `fhirSync`: the DICOM service writes an ImagingStudy into `fhir` as its own
    Workspace client, whose secret the operator generated."""
    ds = _fresh_ct()
    _store(stack, app_token, ds)
    ns = stack.ns.name
    status_url = stack.get("FhirService", "fhir")["status"]["url"]
    auth = {"Authorization": f"Bearer {app_token}", "Accept": FHIR_JSON}
    with port_forward(ns, "fhir") as fwd:
        base = base_through(fwd, status_url)

        def found():
            r = requests.get(f"{base}/ImagingStudy", headers=auth, timeout=30,
                             params={"identifier": f"urn:dicom:uid|urn:oid:{ds.StudyInstanceUID}"})
            assert r.status_code == 200, r.text
            return r.json().get("entry")

        entries = poll("the ImagingStudy written by the DICOM→FHIR sync", found, timeout=60,
                       diagnose=lambda: pod_logs(ns, "dicom"))
    assert len(entries) == 1, entries


# ----------------------------------------------------------------------------------------------
# 5. MedTech: a device message through Mosquitto becomes an Observation


def test_medtech_turns_a_device_message_into_an_observation(stack, app_token):
    ns = stack.ns.name
    u = uuid.uuid4().hex[:8]
    device, patient = f"fall-{u}", f"p-{u}"
    # The `fall` template of examples/templates/vitals/devicemapping.json (CalculatedContent).
    message = {"deviceId": device, "patientId": patient, "time": "2026-12-01T10:45:00Z", "event": "fall"}
    kubectl("exec", "-n", ns, "deployment/mosquitto", "--",
            "mosquitto_pub", "-h", "127.0.0.1", "-p", "1883", "-q", "1",
            "-t", f"devices/{device}/messages/events", "-m", json.dumps(message))

    status_url = stack.get("FhirService", "fhir")["status"]["url"]
    auth = {"Authorization": f"Bearer {app_token}", "Accept": FHIR_JSON}
    with port_forward(ns, "fhir") as fwd:
        base = base_through(fwd, status_url)

        def search(resource: str, **params) -> list[dict]:
            r = requests.get(f"{base}/{resource}", params=params, headers=auth, timeout=30)
            assert r.status_code == 200, r.text
            return [e["resource"] for e in r.json().get("entry", [])]

        def observations():
            devices = search("Device", identifier=device)
            if len(devices) != 1:
                return None
            return search("Observation", code="1912002", device=f"Device/{devices[0]['id']}")

        found = poll("the fall Observation in FHIR", observations, timeout=60,
                     diagnose=lambda: pod_logs(ns, "medtech") + "\n" + pod_logs(ns, "mosquitto"))
        assert len(found) == 1, found
        value = found[0]["valueCodeableConcept"]
        assert value["text"] == "Fall detected"
        assert value["coding"][0]["code"] == "217082002"
        # Create resolution made the Patient the message named.
        patients = search("Patient", identifier=patient)
        assert len(patients) == 1, patients
        assert found[0]["subject"]["reference"] == f"Patient/{patients[0]['id']}"


# ----------------------------------------------------------------------------------------------
# 6. A config change rolls the pods


def test_a_config_change_rolls_the_pods(stack):
    ns = stack.ns.name
    before = get("deployment", "fhir", ns)
    hash_before = before["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH]
    revision_before = int(before["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
    config_maps = [c for c in get_list("configmaps", ns) if owned_by(c, "FhirService", "fhir")]
    assert len(config_maps) == 1, [c["metadata"]["name"] for c in config_maps]
    config_map = config_maps[0]["metadata"]["name"]
    data_before = config_maps[0].get("data")

    max_age = stack.get("FhirService", "fhir")["spec"]["cors"]["maxAge"] + 1
    kubectl("patch", RESOURCE["FhirService"], "fhir", "-n", ns, "--type", "merge",
            "-p", json.dumps({"spec": {"cors": {"maxAge": max_age}}}))

    def new_hash():
        h = get("deployment", "fhir", ns)["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH]
        return h if h != hash_before else None

    hash_after = poll("the Deployment's config hash to change", new_hash, timeout=120,
                      diagnose=lambda: diagnostics(ns, (RESOURCE["FhirService"], "fhir")))
    assert get("configmap", config_map, ns).get("data") != data_before

    r = kubectl_run("rollout", "status", "deployment/fhir", "-n", ns, "--timeout=300s", timeout=330)
    assert r.returncode == 0, f"{r.stderr}\n{diagnostics(ns, ('deployment', 'fhir'))}"
    after = get("deployment", "fhir", ns)
    revision_after = int(after["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
    assert revision_after > revision_before

    sets = [rs for rs in get_list("replicasets", ns)
            if any(o.get("uid") == after["metadata"]["uid"] for o in rs["metadata"].get("ownerReferences") or [])]
    by_revision = {int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]): rs for rs in sets}
    new = by_revision[revision_after]
    assert new["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH] == hash_after
    assert (new.get("status") or {}).get("readyReplicas") == after["spec"]["replicas"], new.get("status")
    old = by_revision.get(revision_before)
    assert old is None or old["spec"]["replicas"] == 0, "the old ReplicaSet was not scaled down"

    # The resource reports the new generation Ready again.
    wait_ready("FhirService", "fhir", ns)


# ----------------------------------------------------------------------------------------------
# 7. Deletion: Retain keeps the database, Delete drops it


def _delete(resource: str, name: str, namespace: str) -> None:
    """`kubectl delete`, which waits until the object is gone, i.e. its finalizer has run."""
    r = kubectl_run("delete", resource, name, "-n", namespace, "--wait=true", "--timeout=180s", timeout=210)
    if r.returncode != 0:
        pytest.fail(f"deleting {resource}/{name}: {r.stderr.strip()}\n{diagnostics(namespace, (resource, name))}",
                    pytrace=False)


def test_deleting_services_keeps_or_drops_their_databases_by_policy(stack):
    ns = stack.ns.name

    # Retain, the Workspace's default: the owned Secret goes, the database stays.
    apply(fhir_service("fhir-retain"), ns)
    wait_ready("FhirService", "fhir-retain", ns)
    db = database_of(ns, "fhir-retain")
    assert db in expected_databases(ns, "fhir-retain"), f"database {db}, expected one of {expected_databases(ns, 'fhir-retain')}"
    assert database_exists(ns, db), f"database {db} of fhir-retain does not exist"
    _delete(RESOURCE["FhirService"], "fhir-retain", ns)
    assert database_exists(ns, db), f"deletionPolicy Retain, yet database {db} was dropped"
    wait_gone("secret", "fhir-retain-db", ns)
    wait_gone("deployment", "fhir-retain", ns)
    assert database_exists(ns, db)

    # Delete, on the service's own storage.postgres: the database is dropped before the resource
    # is gone (that is what the finalizer is for).
    apply(dicom_service("dicom-delete", fhir_sync=False, storage={
        "postgres": {"adminSecretRef": {"name": "pg-admin", "key": "uri"}, "deletionPolicy": "Delete"},
    }), ns)
    wait_ready("DicomService", "dicom-delete", ns)
    db = database_of(ns, "dicom-delete")
    assert db in expected_databases(ns, "dicom-delete"), f"database {db}, expected one of {expected_databases(ns, 'dicom-delete')}"
    assert database_exists(ns, db), f"database {db} of dicom-delete does not exist"
    _delete(RESOURCE["DicomService"], "dicom-delete", ns)
    assert not database_exists(ns, db), f"deletionPolicy Delete, yet database {db} is still there"
    wait_gone("secret", "dicom-delete-db", ns)


# ----------------------------------------------------------------------------------------------
# 8. A missing Secret is reported, and the service recovers once it exists


def test_a_missing_connection_secret_is_reported_until_it_exists(stack):
    ns = stack.ns.name
    u = uuid.uuid4().hex[:8]
    secret, database = f"conn-{u}", f"conn_{u}"
    apply(fhir_service("fhir-conn", storage={"postgres": {"connectionSecretRef": {"name": secret, "key": "uri"}}}), ns)

    c = wait_condition("FhirService", "fhir-conn", ns, "Ready",
                       lambda c: c["status"] == "False" and secret in (c.get("message") or ""),
                       f"Ready=False with a message naming Secret {secret}")
    assert c.get("reason"), c

    psql(ns, f"create database {database}")
    apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret}, "type": "Opaque",
           "stringData": {"uri": stack.ns.pg_url(database)}}, ns)
    wait_ready("FhirService", "fhir-conn", ns)


# ----------------------------------------------------------------------------------------------
# 9. CloudNativePG named but not installed


def test_a_cnpg_database_without_cnpg_installed_is_reported(stack):
    ns = stack.ns.name
    if kubectl("get", "crd", "clusters.postgresql.cnpg.io", "--ignore-not-found", "-o", "name").strip():
        pytest.skip("CloudNativePG's CRDs are installed in this cluster; this test needs a cluster without them")
    apply(fhir_service("fhir-cnpg", storage={"postgres": {"cnpg": {"clusterName": "pg"}}}), ns)
    c = wait_condition("FhirService", "fhir-cnpg", ns, "DatabaseReady",
                       lambda c: c["status"] == "False" and c.get("reason") == "CnpgNotInstalled",
                       "DatabaseReady=False, reason CnpgNotInstalled")
    assert c.get("message"), c
    ready = condition(get(RESOURCE["FhirService"], "fhir-cnpg", ns), "Ready")
    assert ready is None or ready["status"] != "True", ready


# ----------------------------------------------------------------------------------------------
# 10. CEL: kind and workspaceRef are immutable


def _transition_messages(node: dict, mentioning: str | None = None) -> list[str]:
    """Messages of the node's CEL rules that compare with oldSelf (and name `mentioning`)."""
    return [
        v.get("message") or v["rule"]
        for v in node.get("x-kubernetes-validations") or []
        if "oldSelf" in v["rule"] and (mentioning is None or mentioning in v["rule"])
    ]


def test_the_apiserver_refuses_changing_kind_or_workspace_ref(stack):
    ns = stack.ns.name
    crd = json.loads(kubectl("get", "crd", RESOURCE["FhirService"], "-o", "json"))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    spec_schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    props = spec_schema["properties"]

    original = fhir_service("fhir-cel")
    apply(original, ns)

    # spec.kind. Its enum holds one value today, and the apiserver skips CEL rules when the
    # schema (an enum) already refuses the object: then the enum's refusal is what one sees.
    kind_schema = props["kind"]
    enum = kind_schema.get("enum")
    others = [k for k in enum or [] if k != original["spec"]["kind"]]
    new_kind = others[0] if others else "fhir-R5"
    if enum is None or new_kind in enum:
        messages = _transition_messages(kind_schema)
        assert messages, "the FhirService CRD has no CEL rule keeping spec.kind immutable"
        expected = messages[0]
    else:
        expected = f'Unsupported value: "{new_kind}"'
    changed = json.loads(json.dumps(original))
    changed["spec"]["kind"] = new_kind
    r = try_apply(changed, ns)
    assert r.returncode != 0, f"changing spec.kind to {new_kind} was accepted: {r.stdout}"
    assert "spec.kind" in r.stderr and expected in r.stderr, r.stderr

    # spec.workspaceRef: a transition rule on it, on its name, or on spec naming it.
    ref_schema = props["workspaceRef"]
    messages = (_transition_messages(ref_schema)
                + _transition_messages((ref_schema.get("properties") or {}).get("name") or {})
                + _transition_messages(spec_schema, mentioning="workspaceRef"))
    assert messages, (
        "the FhirService CRD has no CEL rule keeping spec.workspaceRef immutable (issue 8: "
        "\"kind and workspaceRef are immutable\"), so the apiserver would accept the change"
    )
    changed = json.loads(json.dumps(original))
    changed["spec"]["workspaceRef"] = {"name": f"{WORKSPACE}-other"}
    r = try_apply(changed, ns)
    assert r.returncode != 0, f"changing spec.workspaceRef was accepted: {r.stdout}"
    assert any(m in r.stderr for m in messages), f"expected one of {messages}: {r.stderr}"

    stored = get(RESOURCE["FhirService"], "fhir-cel", ns)["spec"]
    assert stored["kind"] == original["spec"]["kind"]
    assert stored["workspaceRef"] == {"name": WORKSPACE}
