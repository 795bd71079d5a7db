#!/usr/bin/env bash
# CI of the Python client package (clients/python, permd-client):
#
#   clients/python/ci.sh [PERMD_BIN]      # or PERMD_BIN=/path/to/permd clients/python/ci.sh
#
# 1. the committed stubs (permd_client/_gen) are what generate.sh makes now
#    from proto/ (regenerated into a temp dir with grpcio-tools 1.85.1 in a
#    venv of its own, then diffed);
# 2. builds the wheel (pip wheel --no-deps) from a copy of the package, so
#    the checkout gets no build/ or *.egg-info, checks what it holds, and
#    type-checks the package and tests (mypy --strict);
# 3. installs the wheel into a fresh venv outside the checkout (its
#    dependencies from PyPI; no grpcio-tools there: no protoc at install);
# 4. runs clients/python/tests (unittest) from a directory outside the
#    checkout, against a permd they start on 127.0.0.1:0;
# 5. runs examples/python/client.py --json with that venv against a permd
#    started here, and checks its report.
#
# Every step is bounded; a permd started here or by the tests is killed on
# exit (by pid). PYTHON picks the base interpreter (default python3).
# Exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
PERMD_BIN="${1:-${PERMD_BIN:-}}"
GRPCIO_TOOLS_VERSION=1.85.1
SERVER_START_TIMEOUT_S=90

step() { printf '\n--- %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
fail() { echo "ci.sh: FAILED: $*" >&2; exit 1; }

[ -n "$PERMD_BIN" ] || fail "give the permd binary: clients/python/ci.sh PATH (or PERMD_BIN=PATH)"
[ -f "$PERMD_BIN" ] && [ -x "$PERMD_BIN" ] || fail "PERMD_BIN=$PERMD_BIN is not an executable file"
PERMD_BIN="$(cd "$(dirname "$PERMD_BIN")" && pwd)/$(basename "$PERMD_BIN")"
export PERMD_BIN

tmp="$(mktemp -d)"
case "$tmp" in "$repo"/*) fail "mktemp -d gave a directory inside the checkout: $tmp" ;; esac
# The tests write their permd's pid here (and remove it once it stopped).
pidfile="$tmp/test-server.pid"
server=""
kill_permd() { # PID: only while it still is the permd started from PERMD_BIN
  local pid="$1" cmd
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  case "$cmd" in "$PERMD_BIN serve "*) kill "$pid" 2>/dev/null || true ;; esac
}
cleanup() {
  [ -n "$server" ] && kill_permd "$server"
  [ -s "$pidfile" ] && kill_permd "$(cat "$pidfile")"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pip_install() { # VENV ARGS...: bounded, quiet
  local venv="$1"
  shift
  timeout 600 "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}

step "stubs are current (generate.sh into a temp dir, diff)"
timeout 300 "$PYTHON" -m venv "$tmp/gen"
pip_install "$tmp/gen" "grpcio-tools==$GRPCIO_TOOLS_VERSION"
PYTHON="$tmp/gen/bin/python" timeout 120 "$here/generate.sh" "$tmp/stubs"
if ! diff -r -x __pycache__ "$here/permd_client/_gen" "$tmp/stubs"; then
  fail "permd_client/_gen is stale: run clients/python/generate.sh and commit the result"
fi
echo "stubs current"

step "build the wheel"
mkdir -p "$tmp/src" "$tmp/dist"
tar -C "$here" --exclude=build --exclude=dist --exclude='*.egg-info' --exclude=__pycache__ -cf - . \
  | tar -C "$tmp/src" -xf -
timeout 600 "$tmp/gen/bin/python" -m pip wheel --quiet --disable-pip-version-check \
  --no-deps -w "$tmp/dist" "$tmp/src"
shopt -s nullglob
wheels=("$tmp"/dist/permd_client-0.1.0-*.whl)
shopt -u nullglob
[ "${#wheels[@]}" -eq 1 ] || fail "expected one permd_client-0.1.0 wheel, got: $(ls "$tmp/dist")"
wheel="${wheels[0]}"
echo "built $(basename "$wheel")"
"$tmp/gen/bin/python" - "$wheel" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = [
    "permd_client/__init__.py", "permd_client/_client.py", "permd_client/py.typed",
    "permd_client/_gen/__init__.py", "permd_client/_gen/permd/__init__.py",
    "permd_client/_gen/permd/v1/__init__.py",
]
for m in ("authorizer", "admin"):
    need += ["permd_client/_gen/permd/v1/%s_pb2%s" % (m, s) for s in (".py", ".pyi", "_grpc.py")]
missing = [n for n in need if n not in names]
stray = sorted(n for n in names if not n.startswith(("permd_client/", "permd_client-0.1.0.dist-info/")))
meta = zipfile.ZipFile(sys.argv[1]).read("permd_client-0.1.0.dist-info/METADATA").decode()
want = ["Name: permd-client", "Version: 0.1.0", "License-Expression: Apache-2.0",
        "Requires-Dist: grpcio>=1.85.1", "Requires-Dist: protobuf<8,>=7.35.1"]
absent = [w for w in want if w not in meta.splitlines()]
if missing or stray or absent:
    sys.exit("wheel: missing %s, stray %s, metadata lacks %s" % (missing, stray, absent))
print("wheel holds the package, its stubs, py.typed; metadata ok")
PY

step "type check (mypy --strict, pinned with its stubs)"
pip_install "$tmp/gen" mypy==2.4.1 types-protobuf==7.35.1.20260906 \
  types-grpcio==1.85.0.20261028 types-grpcio-health-checking==1.0.0.20261021
(cd "$tmp/src" && timeout 300 "$tmp/gen/bin/python" -m mypy --strict --no-incremental \
  permd_client tests/test_client.py)

step "install the wheel into a fresh venv"
timeout 300 "$PYTHON" -m venv "$tmp/venv"
pip_install "$tmp/venv" "$wheel"
mkdir -p "$tmp/work"
cd "$tmp/work"
"$tmp/venv/bin/python" - "$tmp/venv" <<'PY'
import importlib.util, os, sys
import permd_client
where = os.path.realpath(permd_client.__file__)
venv = os.path.realpath(sys.argv[1])
if not where.startswith(venv + os.sep):
    sys.exit("permd_client imported from %s, not from the venv %s" % (where, venv))
if importlib.util.find_spec("grpc_tools") is not None:
    sys.exit("grpc_tools is installed in the test venv: the package must not need it")
print("permd_client %s from %s" % (permd_client.__version__, where))
PY

step "tests (unittest, from $tmp/work)"
cp -r "$here/tests" "$tmp/work/tests"
PERMD_SERVER_PIDFILE="$pidfile" timeout -k 10 600 \
  "$tmp/venv/bin/python" -m unittest discover -s tests -v

step "examples/python/client.py against the installed package"
pip_install "$tmp/venv" "grpcio-reflection==$GRPCIO_TOOLS_VERSION"
log="$tmp/permd.log"
env -u PERMD_CONFIG -u PERMD_LISTEN -u PERMD_DATA -u PERMD_DATABASE_URL -u PERMD_ADMIN_TOKEN \
  RUST_LOG=info "$PERMD_BIN" serve --listen 127.0.0.1:0 --no-metrics --log-format json \
  </dev/null >"$log" 2>&1 &
server=$!
addr=""
for _ in $(seq 1 $((SERVER_START_TIMEOUT_S * 4))); do
  kill -0 "$server" 2>/dev/null || { cat "$log" >&2; fail "permd exited before serving"; }
  addr="$("$tmp/venv/bin/python" - "$log" <<'PY'
import json, sys
for line in open(sys.argv[1], errors="replace"):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    f = e.get("fields", e)
    if f.get("message") == "permd serving":
        print(f.get("listen", ""))
        break
PY
)"
  [ -n "$addr" ] && break
  sleep 0.25
done
[ -n "$addr" ] || { cat "$log" >&2; fail "permd did not serve within ${SERVER_START_TIMEOUT_S}s"; }
echo "permd on $addr"
for args in "--count 10000" "--count 1237 --packed"; do
  # shellcheck disable=SC2086 # word splitting of $args is wanted
  report="$(timeout 120 "$tmp/venv/bin/python" "$repo/examples/python/client.py" \
    --addr "$addr" --json $args)"
  echo "client.py $args: $report"
  "$tmp/venv/bin/python" - "$report" $args <<'PY'
import json, sys
r = json.loads(sys.argv[1])
count = int(sys.argv[3])
keys = {"services", "health", "tenant", "principal", "action", "count",
        "allowed_count", "allowed_bits", "denied_count", "denials", "revision"}
problems = []
if set(r) != keys:
    problems.append("keys %s" % sorted(set(r) ^ keys))
if "permd.v1.Authorizer" not in r.get("services", []):
    problems.append("reflection lacks permd.v1.Authorizer")
if r.get("health") != "SERVING":
    problems.append("health %r" % r.get("health"))
if r.get("count") != count:
    problems.append("count")
if r.get("allowed_bits") != r.get("allowed_count"):
    problems.append("bitmask disagrees with allowed_count")
if r.get("allowed_count", 0) + r.get("denied_count", 0) != count:
    problems.append("allowed + denied != count")
if sum(r.get("denials", {}).values()) != r.get("denied_count"):
    problems.append("histogram does not add up to denied_count")
if not (0 < r.get("allowed_count", 0) < count):
    problems.append("not a mixed answer")
if problems:
    sys.exit("client.py report: " + "; ".join(problems))
PY
done
kill "$server"
wait "$server" 2>/dev/null || true
server=""

step "python client: all checks passed"
