#!/usr/bin/env bash
# The cluster end-to-end suite (e2e/cluster/README.md): installs the chart charts/hds as release
# `hds` into namespace hds-system with the images HDS_OPERATOR_IMAGE and HDS_IMAGE (already
# built and loadable by the cluster), runs `pytest e2e/cluster`, and uninstalls what it
# installed. Extra arguments go to pytest (e.g. `-k medtech`, `-x`).
#
# Exit status: pytest's; 2 when there is no cluster, kubectl, or usable image reference.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

die() {
  log "error: $*"
  exit 2
}

RELEASE=hds
OPERATOR_NS=hds-system
# The chart names its Deployment (and Lease) "<fullname>-operator": "hds-operator" for release hds.
OPERATOR_DEPLOYMENT=hds-operator
CRDS=(workspaces.hds.dev fhirservices.hds.dev dicomservices.hds.dev medtechservices.hds.dev)
HDS_IMAGE="${HDS_IMAGE:-hds:e2e}"
HDS_OPERATOR_IMAGE="${HDS_OPERATOR_IMAGE:-hds-operator:e2e}"
USE_INSTALLED="${HDS_E2E_USE_INSTALLED:-0}"
KEEP="${HDS_E2E_KEEP_NAMESPACE:-0}"

command -v kubectl >/dev/null 2>&1 || die "kubectl is not installed (see e2e/cluster/README.md)"
if ! info=$(kubectl cluster-info --request-timeout=15s 2>&1); then
  printf '%s\n' "$info" >&2
  die "no reachable Kubernetes cluster: \`kubectl cluster-info\` failed (KUBECONFIG=${KUBECONFIG:-~/.kube/config}). Start one, e.g. \`kind create cluster\`, see e2e/cluster/README.md"
fi
log "cluster: $(kubectl config current-context 2>/dev/null || echo '?')"

# repository:tag, the tag after the last colon of the last path component (a registry may have
# a port). A tag is required: `latest` would make the kubelet try to pull instead of using the
# loaded image.
image_ok() {
  case "$1" in
    *@*) return 1 ;;
  esac
  case "${1##*/}" in
    *:latest) return 1 ;;
    *:?*) return 0 ;;
    *) return 1 ;;
  esac
}
for image in "$HDS_IMAGE" "$HDS_OPERATOR_IMAGE"; do
  image_ok "$image" || die "image '$image' needs an explicit tag other than latest (repository:tag, no digest); see e2e/cluster/README.md"
done

ensure_venv e2e/requirements.txt
helm() { bash scripts/helm.sh "$@"; }
helm version >&2 || die "helm does not run (scripts/helm.sh installs it; see its message above)"

HDS_E2E_RUN="$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
export HDS_E2E_RUN HDS_E2E_KEEP_NAMESPACE="$KEEP"
export HDS_OPERATOR_NAMESPACE="$OPERATOR_NS" HDS_OPERATOR_DEPLOYMENT="$OPERATOR_DEPLOYMENT"

installed=0
new_crds=()  # the CRDs this script's install brought, removed at the end
ns_existed=1

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local status=$?
  set +e
  if [ "$KEEP" = 1 ]; then
    log "HDS_E2E_KEEP_NAMESPACE=1: the test namespace (label hds-e2e/run=$HDS_E2E_RUN) and the chart stay installed"
    exit "$status"
  fi
  # Test namespaces the suite did not get to delete (an interrupted run), while the operator
  # still runs to remove its finalizers.
  kubectl delete namespace -l "hds-e2e/run=$HDS_E2E_RUN" --wait=true --timeout=300s >&2 ||
    log "warning: could not delete the namespaces labelled hds-e2e/run=$HDS_E2E_RUN"
  if [ "$installed" = 1 ]; then
    log "uninstalling release $RELEASE"
    helm uninstall "$RELEASE" --namespace "$OPERATOR_NS" --wait --timeout 5m >&2 || {
      log "error: helm uninstall $RELEASE failed"
      [ "$status" = 0 ] && status=1
    }
    # Helm leaves CRDs alone; remove them and the namespace when this script brought them.
    if [ "${#new_crds[@]}" -gt 0 ]; then
      kubectl delete crd "${new_crds[@]}" --ignore-not-found --timeout=120s >&2 || log "warning: could not delete the CRDs"
    fi
    if [ "$ns_existed" = 0 ]; then
      kubectl delete namespace "$OPERATOR_NS" --ignore-not-found --wait=false >&2 || true
    fi
  fi
  exit "$status"
}
trap cleanup EXIT

if helm status "$RELEASE" --namespace "$OPERATOR_NS" >/dev/null 2>&1; then
  [ "$USE_INSTALLED" = 1 ] ||
    die "release $RELEASE is already installed in $OPERATOR_NS; uninstall it (\`bash scripts/helm.sh uninstall $RELEASE -n $OPERATOR_NS\`) or set HDS_E2E_USE_INSTALLED=1 to test it as it is"
  log "testing the installed release $RELEASE in $OPERATOR_NS (HDS_E2E_USE_INSTALLED=1)"
else
  [ "$USE_INSTALLED" = 1 ] && die "HDS_E2E_USE_INSTALLED=1, but no release $RELEASE is installed in $OPERATOR_NS"
  kubectl get namespace "$OPERATOR_NS" >/dev/null 2>&1 || ns_existed=0
  for crd in "${CRDS[@]}"; do
    if [ -z "$(kubectl get crd "$crd" --ignore-not-found -o name)" ]; then
      new_crds+=("$crd")
    else
      log "warning: CRD $crd exists already; Helm does not upgrade it (the first test compares it with the chart's)"
    fi
  done
  log "installing charts/hds as $RELEASE into $OPERATOR_NS (operator $HDS_OPERATOR_IMAGE, services $HDS_IMAGE)"
  installed=1
  helm install "$RELEASE" charts/hds --namespace "$OPERATOR_NS" --create-namespace \
    --set-string "image.repository=${HDS_OPERATOR_IMAGE%:*}" \
    --set-string "image.tag=${HDS_OPERATOR_IMAGE##*:}" \
    --set-string "hdsImage.repository=${HDS_IMAGE%:*}" \
    --set-string "hdsImage.tag=${HDS_IMAGE##*:}" \
    --set replicaCount=2 \
    --set leaderElection.enabled=true >&2
fi

set +e
"$HDS_VENV/bin/python" -m pytest -q e2e/cluster -p no:cacheprovider --rootdir e2e/cluster --confcutdir e2e/cluster "$@"
status=$?
set -e
exit "$status"
