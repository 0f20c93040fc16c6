#!/usr/bin/env bash
# Installs the third-party Kafka clients the interop tests drive against the Strom broker:
#   - kcat (+ librdkafka-dev, whose rdkafka_mock.h the mock-cluster tests use), from apt
#   - curl (the Connect REST API test) and mariadb-server (binlog tests start their own
#     mariadbd), from apt
#   - a venv at .peers/venv (made from /usr/bin/python3) with confluent-kafka and
#     kafka-python, plus the codec packages kafka-python needs for snappy/lz4/zstd
#   - kafkajs 2.2.4 under .peers/node
# Idempotent: each step checks first and is skipped when already done.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="$REPO/.peers"
VENV="$PEERS/venv"
NODE_DIR="$PEERS/node"
KAFKAJS_VERSION="2.2.4"
# Codec packages for kafka-python: optional, installed only when a wheel exists.
KAFKA_PYTHON_CODECS=(python-snappy lz4 zstandard)

start=$(date +%s)
log() { echo "install-peers: $*"; }

mkdir -p "$PEERS"
# Keep everything under .peers/ out of git even if the root .gitignore does not list it.
[ -f "$PEERS/.gitignore" ] || echo '*' >"$PEERS/.gitignore"

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
have_deb() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# --- kcat and librdkafka-dev -------------------------------------------------------------
missing_debs=()
command -v kcat >/dev/null 2>&1 || missing_debs+=(kcat)
command -v curl >/dev/null 2>&1 || missing_debs+=(curl)
# A MariaDB server the change-capture tests start on their own (not as a service).
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing_debs+=(mariadb-server)
have_deb librdkafka-dev || missing_debs+=(librdkafka-dev)
if [ "${#missing_debs[@]}" -gt 0 ]; then
    apt_install "${missing_debs[@]}"
else
    log "kcat, curl, mariadb-server and librdkafka-dev already installed"
fi
log "kcat: $(kcat -V 2>&1 | grep -m1 Version || true)"

# --- Python venv --------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    if ! /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || ! have_deb python3-venv; then
        apt_install python3-venv
    fi
    log "creating venv $VENV from /usr/bin/python3"
    /usr/bin/python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
if ! "$PY" -c 'import confluent_kafka, kafka' >/dev/null 2>&1; then
    log "pip install confluent-kafka kafka-python"
    "$PY" -m pip install -q --disable-pip-version-check --only-binary=:all: confluent-kafka kafka-python
else
    log "confluent-kafka and kafka-python already in venv"
fi
for pkg in "${KAFKA_PYTHON_CODECS[@]}"; do
    if "$VENV/bin/pip" show -q "$pkg" >/dev/null 2>&1; then
        continue
    fi
    log "pip install $pkg (kafka-python codec)"
    if ! "$PY" -m pip install -q --disable-pip-version-check --only-binary=:all: "$pkg"; then
        log "no wheel for $pkg: kafka-python will skip that codec"
    fi
done
log "python: $("$PY" -c 'import confluent_kafka, kafka; print("confluent-kafka", confluent_kafka.version(), "librdkafka", confluent_kafka.libversion()[0], "kafka-python", kafka.__version__)')"

# --- kafkajs ------------------------------------------------------------------------------
mkdir -p "$NODE_DIR"
if [ ! -f "$NODE_DIR/package.json" ]; then
    cat >"$NODE_DIR/package.json" <<EOF
{ "name": "strom-interop-peers", "private": true, "version": "0.0.0" }
EOF
fi
installed_kafkajs=""
if [ -f "$NODE_DIR/node_modules/kafkajs/package.json" ]; then
    installed_kafkajs=$(node -p "require('$NODE_DIR/node_modules/kafkajs/package.json').version" 2>/dev/null || true)
fi
if [ "$installed_kafkajs" != "$KAFKAJS_VERSION" ]; then
    command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    log "npm install kafkajs@$KAFKAJS_VERSION into $NODE_DIR"
    (cd "$NODE_DIR" && npm install --silent --no-audit --no-fund "kafkajs@$KAFKAJS_VERSION" >/dev/null)
else
    log "kafkajs $KAFKAJS_VERSION already installed"
fi

log "done in $(($(date +%s) - start)) s"
