#!/usr/bin/env bash
# Create tools/autobahn/.venv27: CPython 2.7 + Autobahn|Testsuite (wstest), pinned.
#
# Idempotent and fast on re-runs: a stamp file in .venv27 records the hash of
# requirements-py27.txt, the interpreter used and this script; when it matches and
# wstest imports, nothing is done. Otherwise:
#   1. find CPython 2.7: $(pyenv root)/versions/2.7.18/bin/python, else python2.7 on PATH
#      (override with AUTOBAHN_PY27=/path/to/python2.7);
#   2. a small Python 3 venv (.venv-virtualenv) holding virtualenv==20.21.1, the last
#      virtualenv that can still create Python 2.7 environments (python3 on PATH, else
#      the newest pyenv 3.x; override with AUTOBAHN_PY3=...);
#   3. virtualenv -p <py2.7> .venv27 (seeds pip 20.3.4 / setuptools 44 from its bundle);
#   4. pip install -r requirements-py27.txt, then `pip check` and `wstest -a`.
# Needs network access to PyPI on the first run only.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV27="$HERE/.venv27"
BOOT="$HERE/.venv-virtualenv"
REQ="$HERE/requirements-py27.txt"
STAMP="$VENV27/.autobahn-installed"
VIRTUALENV_VERSION="20.21.1"

log() { echo "autobahn-setup: $*" >&2; }
die() { log "error: $*"; exit 1; }

find_py27() {
    if [[ -n "${AUTOBAHN_PY27:-}" ]]; then
        echo "$AUTOBAHN_PY27"; return
    fi
    local root=""
    if command -v pyenv >/dev/null 2>&1; then
        root="$(pyenv root 2>/dev/null || true)"
    fi
    [[ -z "$root" ]] && root="${PYENV_ROOT:-$HOME/.pyenv}"
    if [[ -x "$root/versions/2.7.18/bin/python" ]]; then
        echo "$root/versions/2.7.18/bin/python"; return
    fi
    if command -v python2.7 >/dev/null 2>&1; then
        # Resolve pyenv shims and the like to the real interpreter.
        python2.7 -c 'import sys; print(sys.executable)' 2>/dev/null && return
    fi
    return 1
}

find_py3() {
    if [[ -n "${AUTOBAHN_PY3:-}" ]]; then
        echo "$AUTOBAHN_PY3"; return
    fi
    # virtualenv 20.21 runs on Python >= 3.7.
    local ok='import sys; sys.exit(0 if sys.version_info >= (3, 7) else 1)'
    if command -v python3 >/dev/null 2>&1 && python3 -c "$ok" >/dev/null 2>&1; then
        python3 -c 'import sys; print(sys.executable)'; return
    fi
    local root=""
    if command -v pyenv >/dev/null 2>&1; then
        root="$(pyenv root 2>/dev/null || true)"
    fi
    [[ -z "$root" ]] && root="${PYENV_ROOT:-$HOME/.pyenv}"
    local v
    for v in $(ls "$root/versions" 2>/dev/null | grep -E '^3\.[0-9]+' | sort -t. -k2,2nr); do
        if [[ -x "$root/versions/$v/bin/python3" ]] &&
            "$root/versions/$v/bin/python3" -c "$ok" >/dev/null 2>&1; then
            echo "$root/versions/$v/bin/python3"; return
        fi
    done
    return 1
}

PY27="$(find_py27)" || die "no CPython 2.7 found (pyenv install 2.7.18, or set AUTOBAHN_PY27)"
want="$(cat "$REQ" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1) $PY27"

# Fast path: already installed from this exact requirements file and interpreter.
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -x "$VENV27/bin/python" ]] &&
    "$VENV27/bin/python" -c 'import autobahntestsuite.wstest' >/dev/null 2>&1; then
    exit 0
fi

"$PY27" -c 'import sys; assert sys.version_info[:2] == (2, 7)' ||
    die "$PY27 is not Python 2.7"
log "using Python 2.7 at $PY27"

# 1. virtualenv==20.21.1 in a small Python 3 venv (kept for re-runs).
if ! "$BOOT/bin/python" -c "import virtualenv, sys; sys.exit(virtualenv.__version__ != '$VIRTUALENV_VERSION')" >/dev/null 2>&1; then
    PY3="$(find_py3)" || die "no Python >= 3.7 found to run virtualenv (set AUTOBAHN_PY3)"
    log "installing virtualenv==$VIRTUALENV_VERSION into $BOOT (with $PY3)"
    rm -rf "$BOOT"
    "$PY3" -m venv "$BOOT"
    "$BOOT/bin/python" -m pip install -q --disable-pip-version-check "virtualenv==$VIRTUALENV_VERSION"
fi

# 2. The Python 2.7 environment (recreated if broken or made from another interpreter).
if [[ -x "$VENV27/bin/python" ]] &&
    "$VENV27/bin/python" -c 'import sys; assert sys.version_info[:2] == (2, 7)' >/dev/null 2>&1; then
    :
else
    log "creating $VENV27"
    rm -rf "$VENV27"
    "$BOOT/bin/python" -m virtualenv --quiet --no-periodic-update -p "$PY27" "$VENV27"
fi

# 3. Autobahn|Testsuite and its pinned dependencies.
log "installing autobahntestsuite (pinned, see $(basename "$REQ"))"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_PYTHON_VERSION_WARNING=1
"$VENV27/bin/python" -m pip install -q -r "$REQ"
"$VENV27/bin/python" -m pip check >/dev/null || {
    "$VENV27/bin/python" -m pip check >&2 || true
    die "pip check failed in $VENV27"
}
"$VENV27/bin/python" -W ignore "$VENV27/bin/wstest" -a >&2 ||
    die "wstest does not start"

echo "$want" >"$STAMP"
log "ready: $VENV27/bin/wstest"
