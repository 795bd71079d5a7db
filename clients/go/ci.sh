#!/usr/bin/env bash
# CI for the Go example client (clients/go): builds it from Debian 12's
# packages alone -- no Go module proxy -- and runs it against a permd serving
# the built-in demo tenant on a free loopback port.
#
#   bash clients/go/ci.sh [PERMD_BIN]      # or PERMD_BIN=/path/to/permd bash clients/go/ci.sh
#
# 1. apt-get installs the Debian packages below, only those missing (and runs
#    apt-get update first only then);
# 2. generate.sh: protoc + protoc-gen-go + protoc-gen-go-grpc -> gen/ (not committed);
# 3. gofmt / go vet / go build in GOPATH mode (GO111MODULE=off) with
#    GOPATH=<scratch>:/usr/share/gocode, where the -dev packages put their sources;
# 4. starts PERMD_BIN serve --listen 127.0.0.1:0 (the demo tenant; the port
#    is read back from its log), runs the example, checks its answer, stops it.
#
# Environment: PERMD_BIN (or the first argument; default
# ${CARGO_TARGET_DIR:-~/.cache/permd-target}/debug/permd), COUNT (demo
# Contacts to check, default 10000).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/permd-target}"
PERMD_BIN="${1:-${PERMD_BIN:-$target_dir/debug/permd}}"
COUNT="${COUNT:-10000}"

step() { printf '\n=== go client: %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "Debian packages"
# golang-github-golang-protobuf-1-5-dev must be named: golang-google-grpc-dev
# accepts 1-3 or 1-5, and with 1-3 (the first alternative) grpc's codec
# panics marshalling any message that protoc-gen-go 1.28 generated with a
# oneof (APIv1 1.3 predates the APIv2 messages). 1-5 replaces 1-3.
packages=(
  golang-go
  protobuf-compiler
  protoc-gen-go
  protoc-gen-go-grpc
  golang-google-protobuf-dev
  golang-google-grpc-dev
  golang-github-golang-protobuf-1-5-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  timeout 600 apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 900 \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "all present: ${packages[*]}"
fi
go version
protoc --version

step "generate (generate.sh)"
./generate.sh

step "build (GOPATH mode against /usr/share/gocode)"
scratch="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT
# The example's import path, github.com/permd/permd/clients/go, points here.
mkdir -p "$scratch/gopath/src/github.com/permd/permd/clients"
ln -s "$here" "$scratch/gopath/src/github.com/permd/permd/clients/go"
export GO111MODULE=off GOFLAGS= GOPROXY=off GOTOOLCHAIN=local
export GOPATH="$scratch/gopath:/usr/share/gocode"
pkg=github.com/permd/permd/clients/go
unformatted="$(gofmt -l main.go)"
if [[ -n "$unformatted" ]]; then
  echo "gofmt: not formatted: $unformatted" >&2
  exit 1
fi
timeout 300 go vet "$pkg"
timeout 300 go build -o "$scratch/permd-example" "$pkg"
echo "built $scratch/permd-example"

step "serve the demo tenant ($PERMD_BIN)"
if [[ ! -x "$PERMD_BIN" ]]; then
  echo "no permd binary at $PERMD_BIN (build it, or set PERMD_BIN)" >&2
  exit 1
fi
log="$scratch/permd.log"
# Port 0: the kernel picks a free loopback port; permd logs the one it bound.
timeout 300 "$PERMD_BIN" serve --listen 127.0.0.1:0 --no-metrics --log-format json \
  >"$log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 1 300); do # 30 s
  port="$(grep -o '"listen":"127\.0\.0\.1:[0-9]*"' "$log" 2>/dev/null | head -n1 | grep -o '[0-9]*"$' | tr -d '"' || true)"
  [[ -n "$port" ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z "$port" ]]; then
  echo "permd did not come up; its log:" >&2
  cat "$log" >&2
  exit 1
fi
addr="127.0.0.1:$port"
echo "permd on $addr"

step "run the example"
passed=0
failed=0
check() { # NAME COMMAND...: counts the check as passed when COMMAND succeeds
  local name="$1"
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name"
  fi
}
field() { # JSON KEY -> the number after "KEY": (0 when absent)
  local v
  v="$(grep -o "\"$2\": [0-9]*" <<<"$1" | head -n1 | grep -o '[0-9]*$' || true)"
  echo "${v:-0}"
}

timeout 60 "$scratch/permd-example" --addr "$addr" --count "$COUNT"
json="$(timeout 60 "$scratch/permd-example" --addr "$addr" --count "$COUNT" --json)"
echo "$json"
packed="$(timeout 60 "$scratch/permd-example" --addr "$addr" --count "$COUNT" --json --packed)"
handles="$(timeout 60 "$scratch/permd-example" --addr "$addr" --count "$COUNT" --json --handles 2>"$scratch/handles.err")"
packed_handles="$(timeout 60 "$scratch/permd-example" --addr "$addr" --count "$COUNT" --json --packed --handles)"
set +e
refused="$(timeout 60 "$scratch/permd-example" --addr "$addr" --tenant no-such-tenant --count 1 2>&1)"
refused_rc=$?
set -e

allowed="$(field "$json" allowed_count)"
bits="$(field "$json" allowed_bits)"
denied="$(field "$json" denied_count)"
check "health is SERVING" grep -q '"health": "SERVING"' <<<"$json"
check "0 < allowed_count ($allowed) < $COUNT" test "$allowed" -gt 0 -a "$allowed" -lt "$COUNT"
check "allowed bitmask ($bits bits) agrees with allowed_count" test "$bits" -eq "$allowed"
check "allowed + denied ($denied) = $COUNT" test $((allowed + denied)) -eq "$COUNT"
check "some denial reason is counted" grep -Eq '"denials": [{]"[A-Z_]+": [1-9]' <<<"$json"
check "packed ids give the same answer as string ids" test "$packed" = "$json"
check "record handles give the same answer as string ids" test "$handles" = "$json"
check "the second ask went by handles" grep -q "^asked again by $COUNT record handles$" "$scratch/handles.err"
check "handles of packed ids give the same answer" test "$packed_handles" = "$json"
# A refused call exits 1 with the gRPC status and message.
check "unknown tenant: exit 1, $refused" \
  grep -q '^1 permd refused: NOT_FOUND: ' <<<"$refused_rc $refused"
echo
echo "go-client: $passed passed, $failed failed"
((failed == 0))
