#!/usr/bin/env bash
# Runs helm (installed on first use into $HDS_CACHE/tools, see ensure_helm in lib.sh) with the
# given arguments, e.g. `scripts/helm.sh template hds charts/hds`.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_helm
exec "$HDS_HELM" "$@"
