#!/usr/bin/env bash
# Make sure the local services used by the integration tests are up (run by scripts/test
# when CI=true). Idempotent: a service whose port already accepts connections is left alone;
# a missing one is installed with apt-get (needs root), started and waited for.
#
#   PostgreSQL  127.0.0.1:5432   (cluster `main` of the installed version)
#   Redis       127.0.0.1:6379
#   Mosquitto   127.0.0.1:1883
#
# SERVICES_WAIT_S (default 30) is how long to wait for each started service.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WAIT_S="${SERVICES_WAIT_S:-30}"
PATH="$PATH:/usr/sbin:/sbin"
started=()
apt_updated=0

log() { printf 'services: %s\n' "$*" >&2; }
die() {
    printf 'services: error: %s\n' "$*" >&2
    exit 1
}

# Run a command with its output captured; show the output only when it fails.
quiet() {
    local out rc=0
    out="$(mktemp)"
    "$@" >"$out" 2>&1 || rc=$?
    if ((rc != 0)); then
        printf 'services: error: command failed (exit %d): %s\n' "$rc" "$*" >&2
        cat "$out" >&2
    fi
    rm -f "$out"
    return "$rc"
}

port_open() {
    if command -v timeout >/dev/null 2>&1; then
        timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}

# wait_port PORT NAME HINT: wait up to WAIT_S seconds for PORT to accept connections.
wait_port() {
    local deadline=$((SECONDS + WAIT_S))
    until port_open "$1"; do
        if ((SECONDS >= deadline)); then
            die "$2 did not accept connections on 127.0.0.1:$1 within ${WAIT_S}s ($3)"
        fi
        sleep 0.5
    done
}

apt_install() {
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        die "missing $*; install it (needs root and apt-get to do it automatically)"
    fi
    if ((apt_updated == 0)); then
        quiet env DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
        apt_updated=1
    fi
    log "installing $* with apt-get"
    quiet env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
        || die "apt-get install $* failed"
}

pg_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }

ensure_postgres() {
    local ver
    if port_open 5432; then
        return 0
    fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [[ -z "$(pg_version)" ]]; then
        apt_install postgresql
        if port_open 5432; then # the package may have started it
            started+=(postgresql)
            return 0
        fi
    fi
    ver="$(pg_version)"
    [[ -d "/etc/postgresql/$ver/main" ]] \
        || die "no PostgreSQL cluster 'main' (create it: pg_createcluster $ver main)"
    log "starting postgresql $ver/main"
    quiet pg_ctlcluster --skip-systemctl-redirect "$ver" main start || die "postgresql failed to start"
    wait_port 5432 postgresql "see /var/log/postgresql/postgresql-$ver-main.log"
    started+=(postgresql)
}

ensure_redis() {
    if port_open 6379; then
        return 0
    fi
    if ! command -v redis-server >/dev/null 2>&1; then
        apt_install redis-server
        if port_open 6379; then
            started+=(redis)
            return 0
        fi
    fi
    mkdir -p /var/lib/redis /var/log/redis
    log "starting redis"
    quiet redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log \
        || die "redis failed to start"
    wait_port 6379 redis "see /var/log/redis/ci.log"
    started+=(redis)
}

ensure_mosquitto() {
    if port_open 1883; then
        return 0
    fi
    if ! command -v mosquitto >/dev/null 2>&1; then
        apt_install mosquitto
        if port_open 1883; then
            started+=(mosquitto)
            return 0
        fi
    fi
    # Directories the Debian config points at (pid file, log, persistence); missing in
    # containers where the package's init script never ran.
    mkdir -p /run/mosquitto /var/log/mosquitto /var/lib/mosquitto
    if id mosquitto >/dev/null 2>&1; then
        chown mosquitto: /run/mosquitto /var/log/mosquitto /var/lib/mosquitto 2>/dev/null || true
    fi
    log "starting mosquitto"
    quiet mosquitto -d -c /etc/mosquitto/mosquitto.conf || die "mosquitto failed to start"
    wait_port 1883 mosquitto "see /var/log/mosquitto/mosquitto.log"
    started+=(mosquitto)
}

# Programs that tests start themselves (not services): installed only, never started.
ensure_program() {
    command -v "$1" >/dev/null 2>&1 || apt_install "$2"
}

ensure_postgres
ensure_redis
ensure_mosquitto
ensure_program prometheus prometheus # tests/e2e/test_prometheus_peer.py runs its own
ensure_program openssl openssl       # the MQTT TLS test makes its own certificates
ensure_program mosquitto_passwd mosquitto # ... and its own password file
ensure_program chromium chromium          # tests/e2e/test_dashboard_browser.py (headless)

if ((${#started[@]} > 0)); then
    log "started: ${started[*]}"
else
    log "postgresql, redis and mosquitto already running"
fi
