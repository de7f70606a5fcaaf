#!/usr/bin/env bash
# Create (if missing) and refresh the project virtualenv at <repo>/.venv.
#
#   scripts/bootstrap.sh [--dev]                          # run directly
#   source scripts/bootstrap.sh && stats_bootstrap [--dev]  # from another script
#
# `--dev` installs `.[dev]` (tests, linters), otherwise `.` only. The project is (re)installed
# only when pyproject.toml changed since the last install (stamp file inside the venv).
# After sourcing, STATS_ROOT is the repo root and STATS_VENV_DIR the venv directory.
#
# Works on a fresh Debian 12 with only `python3`: when `python3 -m venv` fails (no
# ensurepip), it installs python3-venv with apt-get if running as root, and otherwise
# creates the venv `--without-pip` and installs pip from the wheel published on PyPI.
#
# Tooling knobs (environment; these are not application settings):
#   BOOTSTRAP_PYTHON=...      interpreter that creates the venv (default: first of
#                             python3, python3.14 .. python3.11 on PATH that is >= 3.11)
#   BOOTSTRAP_VENV=...        venv directory (default: <repo>/.venv)
#   BOOTSTRAP_FORCE_NOPIP=1   skip `venv` with pip and apt-get; go straight to the
#                             `--without-pip` + PyPI wheel path (to test that fallback)
#   BOOTSTRAP_PIP_JSON_URL    PyPI metadata URL of pip (default https://pypi.org/pypi/pip/json)
set -euo pipefail

STATS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATS_VENV_DIR="${BOOTSTRAP_VENV:-$STATS_ROOT/.venv}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

_bs_log() { printf 'bootstrap: %s\n' "$*" >&2; }
_bs_err() { printf 'bootstrap: error: %s\n' "$*" >&2; }

# Run a command with its output captured; show the output only when it fails.
_bs_quiet() {
    local log rc=0
    log="$(mktemp)"
    "$@" >"$log" 2>&1 || rc=$?
    if ((rc != 0)); then
        _bs_err "command failed (exit $rc): $*"
        cat "$log" >&2
    fi
    rm -f "$log"
    return "$rc"
}

_bs_version_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; }

# Print the path of a Python >= 3.11 to create the venv with.
_bs_find_python() {
    local candidates c path found=""
    if [[ -n "${BOOTSTRAP_PYTHON:-}" ]]; then
        candidates=("$BOOTSTRAP_PYTHON")
    else
        candidates=(python3 python3.14 python3.13 python3.12 python3.11)
    fi
    for c in "${candidates[@]}"; do
        path="$(command -v "$c" 2>/dev/null)" || continue
        if _bs_version_ok "$path"; then
            printf '%s\n' "$path"
            return 0
        fi
        found+=" $c=$("$path" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo '?')"
    done
    _bs_err "Python >= 3.11 is required to run StatisticsService (found:${found:- no python3 on PATH})."
    _bs_err "Install it (Debian 12: apt-get install python3) or point BOOTSTRAP_PYTHON at one."
    return 1
}

# `python -m venv` with pip; removes a half-created venv on failure (Debian without ensurepip).
_bs_try_venv() {
    local py="$1"
    if "$py" -m venv "$STATS_VENV_DIR" >/dev/null 2>&1 \
        && "$STATS_VENV_DIR/bin/python" -m pip --version >/dev/null 2>&1; then
        return 0
    fi
    rm -rf "$STATS_VENV_DIR"
    return 1
}

# Download the newest pip wheel supporting this Python from PyPI (sha256-checked) and install
# it into the venv with itself.
_bs_install_pip_from_pypi() {
    local tmp whl rc=0
    tmp="$(mktemp -d)"
    _bs_log "downloading pip from PyPI"
    whl="$("$STATS_VENV_DIR/bin/python" - "$tmp" <<'PY'
import hashlib
import json
import os
import re
import sys
import urllib.parse
import urllib.request
from pathlib import Path

url = os.environ.get("BOOTSTRAP_PIP_JSON_URL") or "https://pypi.org/pypi/pip/json"
here = sys.version_info[:2]


def as_tuple(version: str) -> tuple[int, ...] | None:
    return tuple(map(int, version.split("."))) if re.fullmatch(r"\d+(\.\d+)*", version) else None


def supports_us(requires_python: str | None) -> bool:
    for clause in filter(None, (c.strip() for c in (requires_python or "").split(","))):
        m = re.fullmatch(r">=\s*(\d+)\.(\d+)(?:\.\d+)?", clause)
        if m:
            if here < (int(m[1]), int(m[2])):
                return False
        elif not clause.startswith("!="):  # `!=3.0.*` style exclusions never concern us
            return False
    return True


try:
    with urllib.request.urlopen(url, timeout=60) as resp:
        meta = json.load(resp)
        base = resp.geturl()
    candidates = []
    for version, files in meta.get("releases", {}).items():
        key = as_tuple(version)
        for f in files:
            if (key and f["packagetype"] == "bdist_wheel" and not f.get("yanked")
                    and f["filename"].endswith("-none-any.whl")
                    and supports_us(f.get("requires_python"))):
                candidates.append((key, f))
    if not candidates:  # fall back to the latest release listed in `urls`
        candidates = [((0,), f) for f in meta.get("urls", [])
                      if f["packagetype"] == "bdist_wheel" and supports_us(f.get("requires_python"))]
    if not candidates:
        sys.exit(f"no pip wheel for Python {here[0]}.{here[1]} in {url}")
    _, best = max(candidates, key=lambda c: c[0])
    wheel_url = urllib.parse.urljoin(base, best["url"])  # mirrors may give relative URLs
    with urllib.request.urlopen(wheel_url, timeout=300) as resp:
        blob = resp.read()
    if hashlib.sha256(blob).hexdigest() != best["digests"]["sha256"]:
        sys.exit(f"sha256 mismatch for {wheel_url}")
    out = Path(sys.argv[1]) / best["filename"]
    out.write_bytes(blob)
    print(out)
except (OSError, ValueError) as exc:  # URLError, SSL errors, timeouts, bad URLs
    sys.exit(f"cannot download pip from PyPI ({exc}); check network/proxy settings "
             "(https_proxy) and that CA certificates are installed (ca-certificates)")
PY
)" || rc=$?
    if ((rc == 0)); then
        _bs_log "installing $(basename "$whl")"
        _bs_quiet "$STATS_VENV_DIR/bin/python" "$whl/pip" install --quiet \
            --no-warn-script-location "$whl" || rc=$?
    fi
    rm -rf "$tmp"
    if ((rc != 0)); then
        _bs_err "could not install pip into $STATS_VENV_DIR"
    fi
    return "$rc"
}

_bs_create_venv() {
    local py
    py="$(_bs_find_python)" || return 1
    if [[ "${BOOTSTRAP_FORCE_NOPIP:-0}" != 1 ]]; then
        _bs_log "creating ${STATS_VENV_DIR} with $("$py" -c 'import sys; print(sys.version.split()[0])')"
        if _bs_try_venv "$py"; then
            return 0
        fi
        if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            _bs_log "'$py -m venv' failed (no ensurepip); installing python3-venv with apt-get"
            if _bs_quiet env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
                && _bs_quiet env DEBIAN_FRONTEND=noninteractive \
                    apt-get install -y -qq --no-install-recommends python3-venv \
                && _bs_try_venv "$py"; then
                return 0
            fi
        fi
        _bs_log "'$py -m venv' cannot install pip; creating the venv without pip"
    else
        _bs_log "creating ${STATS_VENV_DIR} without pip (BOOTSTRAP_FORCE_NOPIP=1)"
    fi
    _bs_quiet "$py" -m venv --without-pip "$STATS_VENV_DIR" || return 1
    if ! _bs_install_pip_from_pypi; then
        rm -rf "$STATS_VENV_DIR"
        return 1
    fi
}

stats_bootstrap() {
    local mode=base arg vpy stamp want have have_mode spec
    for arg in "$@"; do
        case "$arg" in
            --dev | dev) mode=dev ;;
            --base | base) ;;
            *)
                _bs_err "usage: bootstrap.sh [--dev]"
                return 2
                ;;
        esac
    done
    if [[ ! -f "$STATS_ROOT/pyproject.toml" ]]; then
        _bs_err "$STATS_ROOT/pyproject.toml not found"
        return 1
    fi

    vpy="$STATS_VENV_DIR/bin/python"
    if [[ ! -e "$vpy" ]]; then
        if [[ -e "$STATS_VENV_DIR" ]]; then
            _bs_err "$STATS_VENV_DIR exists but is not a virtualenv (no bin/python); remove it and retry"
            return 1
        fi
        _bs_create_venv || return 1
    fi
    if ! _bs_version_ok "$vpy"; then
        _bs_err "$STATS_VENV_DIR does not run Python >= 3.11 (broken or too old); remove it and retry"
        return 1
    fi
    if ! "$vpy" -m pip --version >/dev/null 2>&1; then
        _bs_log "pip missing in $STATS_VENV_DIR"
        _bs_install_pip_from_pypi || return 1
    fi

    stamp="$STATS_VENV_DIR/.stats-bootstrap-stamp"
    want="$("$vpy" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' \
        "$STATS_ROOT/pyproject.toml")"
    have="" have_mode=""
    if [[ -f "$stamp" ]]; then
        read -r have have_mode <"$stamp" || true
    fi
    if [[ "$have_mode" == dev ]]; then
        mode=dev # keep the dev tools of an existing dev install up to date too
    fi
    if [[ "$have" == "$want" && ("$have_mode" == dev || "$mode" == base) ]]; then
        return 0
    fi

    spec="$STATS_ROOT"
    if [[ "$mode" == dev ]]; then
        spec="$STATS_ROOT[dev]"
    fi
    _bs_log "installing stats-service$([[ "$mode" == dev ]] && echo ' with dev extras') into ${STATS_VENV_DIR}"
    rm -f "$stamp"
    _bs_quiet "$vpy" -m pip install --quiet -e "$spec" || return 1
    printf '%s %s\n' "$want" "$mode" >"$stamp"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    stats_bootstrap "$@"
fi
