# Sourced by the scripts beside it: make sure the project's virtual environment exists and is
# installed for the current pyproject.toml, creating or refreshing it only when needed.
#
# After `ensure_venv`, $REPO is the repository root and $VENV its .venv folder.
# PYTHON (default python3) chooses the interpreter a new .venv is made from.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
VENV="$REPO/.venv"
STAMP="$VENV/.dualwrite-install-stamp"

_say() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

# What the installed state depends on: the project file, and where the editable install points.
_wanted_stamp() {
    printf '%s %s\n' "$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)" "$REPO"
}

_create_venv() {
    local python="${PYTHON:-python3}"
    if ! command -v "$python" >/dev/null 2>&1; then
        _say "$python not found; install Python 3.11 or newer (or set PYTHON)"
        return 1
    fi
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        _say "$("$python" --version 2>&1) is too old; dualwrite needs Python 3.11 or newer (set PYTHON)"
        return 1
    fi
    _say "creating $VENV"
    rm -rf "$VENV"
    "$python" -m venv "$VENV"
}

_install() {
    _say "installing dualwrite and its test tools into $VENV (pyproject.toml changed or first run)"
    rm -f "$STAMP"
    (cd "$REPO" && "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test]')
    _wanted_stamp >"$STAMP"
}

_ensure_venv_unlocked() {
    if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c '' 2>/dev/null; then
        _create_venv
    fi
    if [[ ! -f "$STAMP" ]] || [[ "$(cat "$STAMP")" != "$(_wanted_stamp)" ]]; then
        _install
    fi
}

ensure_venv() {
    if command -v flock >/dev/null 2>&1; then
        # Two scripts started at once must not install into the same .venv together. The lock is
        # taken on this folder, which is always there and never deleted with the .venv.
        (
            flock 9
            _ensure_venv_unlocked
        ) 9<"$(dirname "${BASH_SOURCE[0]}")"
    else
        _ensure_venv_unlocked
    fi
}
