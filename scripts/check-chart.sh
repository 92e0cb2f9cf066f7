#!/usr/bin/env bash
# Checks the Helm chart charts/hds without a cluster:
#   - `helm lint --strict` with the default values and each variant below;
#   - `helm template` (CRDs included) of each variant, every object validated offline against
#     the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields are errors);
#     a kind without a schema fails, except the ServiceMonitor (a Prometheus Operator CRD, which
#     kubernetes-validate cannot know), which is checked for its wiring instead;
#   - the wiring between the objects (selectors, ports, ServiceAccount, bindings, the Lease name,
#     RBAC covering every CRD the chart installs);
#   - values that must be refused are (replicas > 1 without leader election).
# Any failure exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

# The Kubernetes version the operator is built against (k8s-openapi's v1_33 feature).
K8S_VERSION=1.33.0
chart=charts/hds
release=hds
namespace=hds-system

ensure_helm
ensure_venv e2e/requirements.txt
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# name, then --set arguments. The name tells the validator below what to expect.
variants=(
  "default|"
  "single-replica|replicaCount=1,leaderElection.enabled=false"
  "service-monitor|metrics.serviceMonitor.enabled=true,metrics.serviceMonitor.labels.release=prometheus"
  "watch-namespace|watchNamespace=clinic-a"
  "no-metrics-existing-sa|metrics.enabled=false,serviceAccount.create=false,serviceAccount.name=hds-operator-sa,image.tag=dev,hdsImage.tag=dev"
)

log "helm $("$HDS_HELM" version --short) lint --strict, default values"
"$HDS_HELM" lint --strict --namespace "$namespace" "$chart"

files=()
for v in "${variants[@]}"; do
  name="${v%%|*}"
  sets="${v#*|}"
  args=()
  [ -n "$sets" ] && args=(--set "$sets")
  if [ -n "$sets" ]; then
    log "helm lint --strict --set $sets"
    "$HDS_HELM" lint --strict --quiet --namespace "$namespace" "${args[@]}" "$chart"
  fi
  log "helm template ($name)"
  "$HDS_HELM" template "$release" "$chart" --namespace "$namespace" --include-crds \
    "${args[@]}" >"$out/$name.yaml"
  files+=("$name=$out/$name.yaml")
done

log "helm template refuses replicaCount=2 with leaderElection.enabled=false"
if "$HDS_HELM" template "$release" "$chart" --namespace "$namespace" \
  --set replicaCount=2,leaderElection.enabled=false >"$out/refused.yaml" 2>"$out/refused.err"; then
  log "error: helm template rendered replicaCount=2 without leader election; it must refuse"
  exit 1
fi
if ! grep -q "leaderElection.enabled is false" "$out/refused.err"; then
  log "error: helm template failed, but not with the leader-election message:"
  cat "$out/refused.err" >&2
  exit 1
fi
log "refused as it should: $(grep -o 'replicaCount is 2 but leaderElection.enabled is false' "$out/refused.err")"

log "kubernetes-validate $("$HDS_VENV/bin/python" -c 'import kubernetes_validate.version as v; print(v.__version__)') --strict against Kubernetes $K8S_VERSION"
"$HDS_VENV/bin/python" - "$K8S_VERSION" "$release" "$namespace" "${files[@]}" <<'PY'
import sys

import kubernetes_validate.utils as kv
import yaml

version, release, namespace, *variants = sys.argv[1:]
OPERATOR = f"{release}-operator"
# Kinds kubernetes-validate has no schema for, and only these: checked for wiring below.
NO_SCHEMA = {("monitoring.coreos.com/v1", "ServiceMonitor")}

errors = []


def fail(variant, msg):
    errors.append(f"{variant}: {msg}")


def key(o):
    return (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def check_wiring(variant, objs):
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    one = lambda kind: (by_kind.get(kind) or [None])[0]

    def expect(kind, count):
        got = len(by_kind.get(kind, []))
        if got != count:
            fail(variant, f"expected {count} {kind}, rendered {got}")

    expect("Deployment", 1)
    expect("ClusterRole", 1)
    expect("CustomResourceDefinition", 4)
    dep = one("Deployment")
    if dep is None:
        return
    pod = dep["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    (container,) = pod["spec"]["containers"]
    args = container["args"]
    env = {e["name"]: e for e in container.get("env", [])}
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    flag = lambda name: next((a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")), None)

    # The Deployment itself.
    if dep["metadata"]["name"] != OPERATOR:
        fail(variant, f"Deployment is named {dep['metadata']['name']}, not {OPERATOR}")
    if not matches(dep["spec"]["selector"]["matchLabels"], pod_labels):
        fail(variant, "the Deployment's selector does not match its pod labels")
    if args[0] != "run" or not flag("image") or not flag("metrics-listen") or not flag("lease-name"):
        fail(variant, f"operator args miss part of the contract: {args}")
    for var, path in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")):
        if env.get(var, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != path:
            fail(variant, f"env {var} is not the fieldRef {path}")
    if flag("metrics-listen").rsplit(":", 1)[1] != str(ports.get("metrics")):
        fail(variant, "--metrics-listen and the metrics container port differ")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") != "metrics":
            fail(variant, f"{probe} is not GET {path} on the metrics port")
    sc, psc = container["securityContext"], pod["spec"]["securityContext"]
    if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
            and sc.get("capabilities", {}).get("drop") == ["ALL"] and sc.get("runAsNonRoot")
            and sc.get("runAsUser") == 65532 and psc.get("runAsUser") == 65532
            and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault"):
        fail(variant, f"the operator's security context is not locked down: {sc} {psc}")

    # Replicas and leader election.
    leader = env.get("HDS_LEADER_ELECTION", {}).get("value")
    replicas = dep["spec"]["replicas"]
    if leader not in ("true", "false"):
        fail(variant, f"HDS_LEADER_ELECTION is {leader!r}")
    if replicas > 1 and leader != "true":
        fail(variant, f"{replicas} replicas without leader election")
    lease = flag("lease-name")
    if leader == "true":
        expect("Role", 1)
        expect("RoleBinding", 1 + (variant == "watch-namespace"))
        role = next((r for r in by_kind.get("Role", []) if "leader" in r["metadata"]["name"]), None)
        if role is None or role["metadata"]["namespace"] != namespace:
            fail(variant, f"no leader-election Role in {namespace}")
        else:
            named = [r for r in role["rules"] if r.get("resourceNames")]
            if not named or any(lease not in r["resourceNames"] for r in named):
                fail(variant, f"the leader-election Role does not name Lease {lease}")
    else:
        expect("Role", 0)
        expect("RoleBinding", int(variant == "watch-namespace"))

    # ServiceAccount and bindings.
    sa = pod["spec"]["serviceAccountName"]
    if variant == "no-metrics-existing-sa":
        expect("ServiceAccount", 0)
        if sa != "hds-operator-sa":
            fail(variant, f"serviceAccountName is {sa}, not the existing hds-operator-sa")
    else:
        expect("ServiceAccount", 1)
        if one("ServiceAccount") and one("ServiceAccount")["metadata"]["name"] != sa:
            fail(variant, "the Deployment's serviceAccountName is not the rendered ServiceAccount")
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
             for o in objs if o["kind"] in ("Role", "ClusterRole")}
    for b in by_kind.get("RoleBinding", []) + by_kind.get("ClusterRoleBinding", []):
        ref = b["roleRef"]
        ns = None if ref["kind"] == "ClusterRole" else b["metadata"]["namespace"]
        if (ref["kind"], ns, ref["name"]) not in roles:
            fail(variant, f"{b['kind']} {b['metadata']['name']} refers to a missing {ref['kind']} {ref['name']}")
        if b["subjects"] != [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]:
            fail(variant, f"{b['kind']} {b['metadata']['name']} binds {b['subjects']}, not {sa}")
    if variant == "watch-namespace":
        expect("ClusterRoleBinding", 0)
        if flag("watch-namespace") != "clinic-a":
            fail(variant, "--watch-namespace is not passed")
        if not any(b["metadata"]["namespace"] == "clinic-a" and b["roleRef"]["kind"] == "ClusterRole"
                   for b in by_kind.get("RoleBinding", [])):
            fail(variant, "no RoleBinding of the ClusterRole in the watched namespace")
    else:
        expect("ClusterRoleBinding", 1)
        if flag("watch-namespace") is not None:
            fail(variant, "--watch-namespace passed although watchNamespace is empty")

    # The ClusterRole covers each CRD the chart installs, with its status and finalizers.
    granted = {}
    for rule in one("ClusterRole")["rules"]:
        for g in rule["apiGroups"]:
            for r in rule["resources"]:
                granted.setdefault((g, r), set()).update(rule["verbs"])
    for crd in by_kind.get("CustomResourceDefinition", []):
        g, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
        for res, verbs in ((plural, {"get", "list", "watch", "patch"}),
                           (f"{plural}/status", {"patch"}), (f"{plural}/finalizers", {"update"})):
            if not verbs <= granted.get((g, res), set()):
                fail(variant, f"the ClusterRole lacks {sorted(verbs)} on {g} {res}")
    if any("*" in g or "*" in r or "*" in granted[(g, r)] for (g, r) in granted):
        fail(variant, "the ClusterRole uses a wildcard")

    # Metrics Service and ServiceMonitor.
    svc = one("Service")
    if variant == "no-metrics-existing-sa":
        expect("Service", 0)
    else:
        expect("Service", 1)
        if svc and not matches(svc["spec"]["selector"], pod_labels):
            fail(variant, "the metrics Service does not select the operator pods")
        if svc and not any(p["targetPort"] in ("metrics", ports.get("metrics")) for p in svc["spec"]["ports"]):
            fail(variant, "the metrics Service does not target the metrics port")
        # The Service must not select the data-plane pods the operator creates.
        dataplane = {"app.kubernetes.io/name": "hds", "app.kubernetes.io/instance": release,
                     "app.kubernetes.io/component": "fhir"}
        if svc and matches(svc["spec"]["selector"], dataplane):
            fail(variant, "the metrics Service would also select data-plane pods")
    sm = one("ServiceMonitor")
    if variant == "service-monitor":
        expect("ServiceMonitor", 1)
        if sm and svc:
            if not matches(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"]):
                fail(variant, "the ServiceMonitor does not select the metrics Service")
            if sm["spec"]["namespaceSelector"]["matchNames"] != [namespace]:
                fail(variant, "the ServiceMonitor looks outside the release namespace")
            names = {p["name"] for p in svc["spec"]["ports"]}
            if any(e.get("port") not in names or e.get("path") != "/metrics" for e in sm["spec"]["endpoints"]):
                fail(variant, "a ServiceMonitor endpoint is not the Service's metrics port at /metrics")
            if sm["metadata"]["labels"].get("release") != "prometheus":
                fail(variant, "metrics.serviceMonitor.labels are not on the ServiceMonitor")
    else:
        expect("ServiceMonitor", 0)

    # Namespaced objects go to the release namespace (or the watched one, for its binding).
    for o in objs:
        ns = o["metadata"].get("namespace")
        cluster_scoped = o["kind"] in ("ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition")
        if cluster_scoped and ns is not None:
            fail(variant, f"cluster-scoped {o['kind']} {o['metadata']['name']} has a namespace")
        if not cluster_scoped and ns not in (namespace, "clinic-a" if variant == "watch-namespace" else namespace):
            fail(variant, f"{o['kind']} {o['metadata']['name']} is in namespace {ns!r}")


total = 0
for arg in variants:
    variant, path = arg.split("=", 1)
    with open(path) as f:
        objs = [o for o in yaml.safe_load_all(f) if o]
    seen, skipped, before = set(), [], len(errors)
    for o in objs:
        if key(o) in seen:
            fail(variant, f"{key(o)} is rendered twice")
        seen.add(key(o))
        what = f"{o['kind']} {o['metadata']['name']}"
        if (o["apiVersion"], o["kind"]) in NO_SCHEMA:
            skipped.append(what)
            continue
        try:
            kv.validate(o, version, strict=True)
        except kv.ValidationError as e:
            where = ".".join(str(p) for p in e.path)
            fail(variant, f"{what} is invalid for Kubernetes {e.version}: {where}: {e.message}")
        except kv.SchemaNotFoundError as e:
            fail(variant, f"{what}: {e.message}")
    invalid = len(errors) - before
    check_wiring(variant, objs)
    total += len(objs)
    kinds = sorted({o["kind"] for o in objs})
    note = f"; no schema, wiring checked: {', '.join(skipped)}" if skipped else ""
    wiring = "wiring ok" if len(errors) - before == invalid else f"{len(errors) - before - invalid} wiring problems"
    print(f"  {variant}: {len(objs) - len(skipped) - invalid} of {len(objs)} objects valid, {wiring}"
          f" ({', '.join(kinds)}){note}")

if errors:
    print(f"chart check FAILED ({len(errors)} problems):", file=sys.stderr)
    for e in errors:
        print(f"  {e}", file=sys.stderr)
    sys.exit(1)
print(f"chart check passed: {len(variants)} variants, {total} objects")
PY
