#!/usr/bin/env bash
# The changehub test command. Run it as `make test` from the repository root.
#
#   bash tests/run.sh [extra `cargo test` arguments]
#
# 1. Ensures the project-local .venv holds tests/requirements.txt
#    (moto server, cfn-lint); reinstalls when that file changes.
# 2. Starts a moto server (local AWS emulator; tests/moto_server.py applies its
#    DynamoDB writes one at a time, as DynamoDB isolates them) on a free loopback port, logging
#    to target/moto.log, and stops it again on exit, whatever the outcome.
# 3. Runs `cargo test --workspace --locked` (lib, bin, integration tests and
#    doctests) with CHANGEHUB_TEST_AWS_ENDPOINT pointing at the emulator and
#    dummy AWS credentials, so no real AWS account is ever touched.
# 4. Lints template.yaml with cfn-lint.
#
# Exits non-zero when either step fails; both always run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

venv="$root/.venv"
moto_log="$root/target/moto.log"

bash tests/venv.sh "$venv" tests/requirements.txt

# --- moto server -----------------------------------------------------------

mkdir -p target
port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
endpoint="http://127.0.0.1:$port"

moto_pid=""
stop_moto() {
    if [[ -n "$moto_pid" ]] && kill -0 "$moto_pid" 2>/dev/null; then
        kill "$moto_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$moto_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$moto_pid" 2>/dev/null || true
        wait "$moto_pid" 2>/dev/null || true
    fi
    moto_pid=""
}
trap stop_moto EXIT
# Turn Ctrl-C / TERM into a normal exit so the EXIT trap stops the server.
trap 'exit 130' INT
trap 'exit 143' TERM

echo "==> starting moto server on $endpoint (log: target/moto.log)"
"$venv/bin/python" tests/moto_server.py 127.0.0.1 "$port" >"$moto_log" 2>&1 &
moto_pid=$!

moto_up() {
    # Any HTTP answer (even an error status) means the server is serving.
    "$venv/bin/python" - "$endpoint" <<'PY' 2>/dev/null
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=1)
except urllib.error.HTTPError:
    pass
PY
}

deadline=$((SECONDS + 30))
until moto_up; do
    if ! kill -0 "$moto_pid" 2>/dev/null; then
        echo "error: moto server exited before answering on $endpoint; last lines of target/moto.log:" >&2
        tail -n 40 "$moto_log" >&2 || true
        exit 1
    fi
    if ((SECONDS >= deadline)); then
        echo "error: moto server did not answer on $endpoint within 30s; last lines of target/moto.log:" >&2
        tail -n 40 "$moto_log" >&2 || true
        exit 1
    fi
    sleep 0.2
done
echo "==> moto server is up (pid $moto_pid)"

export CHANGEHUB_TEST_AWS_ENDPOINT="$endpoint"
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
# Never let a developer's profile or session token leak into the tests.
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE

# --- tests -------------------------------------------------------------------

cargo_status=0
echo "==> cargo test --workspace --locked $*"
cargo test --workspace --locked "$@" || cargo_status=$?

lint_status=0
echo "==> cfn-lint template.yaml"
"$venv/bin/cfn-lint" template.yaml || lint_status=$?

stop_moto

describe() { if (($1 == 0)); then echo "ok"; else echo "FAILED (exit $1)"; fi; }
if ((cargo_status == 0 && lint_status == 0)); then
    echo "==> changehub tests PASSED: cargo test ok, cfn-lint ok"
    exit 0
fi
echo "==> changehub tests FAILED: cargo test $(describe "$cargo_status"), cfn-lint $(describe "$lint_status")" >&2
if ((cargo_status != 0)); then
    exit "$cargo_status"
fi
exit "$lint_status"
