#!/usr/bin/env bash
# CI for the Java example client (clients/java): compiles it with javac from
# Debian 12's packages alone -- protoc, protoc-gen-grpc-java
# (protobuf-compiler-grpc-java-plugin) and the grpc-java 1.41.3 / protobuf-java
# 3.21.12 jars in /usr/share/java; no Maven or Gradle, no Maven Central -- and
# runs it against a permd serving the built-in demo tenant on a free loopback
# port.
#
#   bash clients/java/ci.sh [PERMD_BIN]      # or PERMD_BIN=/path/to/permd bash clients/java/ci.sh
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

step() { printf '\n=== java client: %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "Debian packages"
# libgrpc-java declares only libopencensus-java as a dependency: the jars its
# POMs need (guava, netty, perfmark, ...) are listed here by hand.
packages=(
  default-jdk-headless
  protobuf-compiler
  protobuf-compiler-grpc-java-plugin
  libprotobuf-java
  libgrpc-java
  libguava-java
  libjsr305-java
  libperfmark-java
  libgoogle-gson-java
  libnetty-java
  libgoogle-common-protos-java
  libgeronimo-annotation-1.3-spec-java
  liberror-prone-java
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Any JDK with javac will do (the machine may have one that is not Debian's default).
if command -v javac >/dev/null; then
  for i in "${!missing[@]}"; do
    [[ "${missing[$i]}" == default-jdk-headless ]] && unset 'missing[i]'
  done
fi
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  timeout 600 apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 900 \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "all present: ${packages[*]}"
fi
javac -version
protoc --version

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

step "generate (protoc --java_out --grpc-java_out)"
mkdir -p "$scratch/gen" "$scratch/classes"
protoc -I ../../proto -I proto \
  --plugin=protoc-gen-grpc-java=/usr/bin/grpc_java_plugin \
  --java_out="$scratch/gen" --grpc-java_out="$scratch/gen" \
  permd/v1/authorizer.proto grpc/health/v1/health.proto

step "compile (javac against /usr/share/java)"
jars=(
  protobuf grpc-api grpc-context grpc-core grpc-netty grpc-protobuf
  grpc-protobuf-lite grpc-stub guava jsr305 geronimo-annotation-1.3-spec
  perfmark-api gson proto-google-common-protos error_prone_annotations
  netty-buffer netty-codec netty-codec-http netty-codec-http2 netty-codec-socks
  netty-common netty-handler netty-handler-proxy netty-resolver netty-transport
)
cp=""
for j in "${jars[@]}"; do
  [[ -f "/usr/share/java/$j.jar" ]] || { echo "missing /usr/share/java/$j.jar" >&2; exit 1; }
  cp="$cp${cp:+:}/usr/share/java/$j.jar"
done
mapfile -t sources < <(find "$scratch/gen" src -name '*.java' | sort)
timeout 300 javac -nowarn -encoding UTF-8 -d "$scratch/classes" -cp "$cp" "${sources[@]}"
run() { timeout 60 java -cp "$scratch/classes:$cp" dev.permd.example.PermdExample "$@"; }

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

run --addr "$addr" --count "$COUNT"
json="$(run --addr "$addr" --count "$COUNT" --json)"
echo "$json"
packed="$(run --addr "$addr" --count "$COUNT" --json --packed)"
handles="$(run --addr "$addr" --count "$COUNT" --json --handles 2>"$scratch/handles.err")"
packed_handles="$(run --addr "$addr" --count "$COUNT" --json --packed --handles)"
set +e
refused="$(run --addr "$addr" --tenant no-such-tenant --count 1 2>&1)"
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
echo "java-client: $passed passed, $failed failed"
((failed == 0))
