#!/usr/bin/env bash
# Ensure a project-local Python virtualenv holds exactly what a pinned
# requirements file asks for.
#
#   bash tests/venv.sh VENV_DIR REQUIREMENTS_FILE
#
# Creates VENV_DIR (python3 -m venv) when it is missing or broken, and runs
# `pip install -r REQUIREMENTS_FILE` when the file's sha256 differs from the
# stamp recorded inside the venv by the last successful install. Silent when
# the venv is already up to date. Set PYTHON to use another interpreter.
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 VENV_DIR REQUIREMENTS_FILE" >&2
    exit 2
fi

venv="$1"
req="$2"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

if [[ ! -f "$req" ]]; then
    echo "venv.sh: no such requirements file: $req" >&2
    exit 2
fi

want="$(sha256sum "$req" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"

if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c '' 2>/dev/null && [[ "$want" == "$have" ]]; then
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c '' 2>/dev/null; then
    echo "==> creating virtualenv $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi

echo "==> installing $req into $venv"
rm -f "$stamp"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
echo "$want" >"$stamp"
