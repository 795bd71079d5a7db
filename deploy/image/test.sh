#!/usr/bin/env bash
# Smoke-test the permd image built by deploy/image/build.sh: run it with podman
# the way Kubernetes would (read-only root filesystem, uid 65532, no
# capabilities, no new privileges), then from OUTSIDE the container check
#
#   1. the image config: user 65532:65532, entrypoint, OCI labels;
#   2. grpc.health.v1.Health/Check: "" and "permd.v1.Authorizer" are SERVING
#      (python3 with the grpcio-health-checking package);
#   3. one BatchCheck through the host's permd binary as the client
#      (`permd check ... --demo-contacts 1000`: exit 0, allowed + denied = 1000);
#   4. the Prometheus endpoint answers and counted those decisions;
#   5. the server process runs as uid 65532 on a read-only rootfs.
#
#   deploy/image/test.sh [IMAGE]        # default localhost/permd:<Cargo.toml version>
#
# Environment:
#   PERMD_CLIENT    client binary, default ${CARGO_TARGET_DIR:-$HOME/.cache/permd-target}/release/permd
#   STORAGE_DRIVER  default vfs (the same storage build.sh wrote to)
#   PODMAN_RUNTIME  OCI runtime, default runc when installed (crun 1.8 in Debian 12
#                   refuses hybrid cgroup v1/v2 hosts), else podman's default
#   NETWORK         publish (default): bridge network, ports published on
#                   127.0.0.1; host: share the host's network namespace and
#                   listen on 127.0.0.1 free ports directly
#   NPROC           RLIMIT_NPROC for the container, default 4096 (see below)
#   START_TIMEOUT   seconds to wait for SERVING, default 30
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$repo/Cargo.toml" | head -n1)
image=${1:-localhost/permd:$version}
client=${PERMD_CLIENT:-${CARGO_TARGET_DIR:-$HOME/.cache/permd-target}/release/permd}
network=${NETWORK:-publish}
start_timeout=${START_TIMEOUT:-30}
name=permd-image-test-$$

die() { echo "test.sh: FAIL: $*" >&2; exit 1; }
ok() { echo "test.sh: ok: $*"; }

[[ -x $client ]] || die "no client binary at $client (set PERMD_CLIENT)"
command -v podman >/dev/null || die "podman not installed: apt-get install podman"
python3 -c 'import grpc, grpc_health.v1.health_pb2' 2>/dev/null ||
	die "python3 lacks grpcio / grpcio-health-checking (pip install grpcio-health-checking)"

podman=(podman --storage-driver "${STORAGE_DRIVER:-vfs}" --cgroup-manager cgroupfs --events-backend file)
runtime=${PODMAN_RUNTIME:-$(command -v runc >/dev/null && echo runc || true)}
[[ -n $runtime ]] && podman+=(--runtime "$runtime")
pd() { timeout 60 "${podman[@]}" "$@"; }

start=$(date +%s.%N)

# 1. Image config, before running anything.
pd image exists "$image" || die "no image $image (run deploy/image/build.sh)"
cfg=$(pd image inspect --format '{{.Config.User}}|{{json .Config.Entrypoint}}|{{index .Config.Labels "org.opencontainers.image.version"}}|{{index .Config.Labels "org.opencontainers.image.revision"}}|{{index .Config.Labels "org.opencontainers.image.source"}}|{{index .Config.Labels "org.opencontainers.image.licenses"}}' "$image")
IFS='|' read -r user entry lversion lrevision lsource llicenses <<<"$cfg"
[[ $user == 65532:65532 ]] || die "image user is '$user', want 65532:65532"
[[ $entry == '["/usr/local/bin/permd"]' ]] || die "entrypoint is $entry"
[[ $lversion == "$version" ]] || die "label version '$lversion' != Cargo.toml '$version'"
[[ $lrevision =~ ^[0-9a-f]{40}(-dirty)?$ ]] || die "label revision '$lrevision' is not a commit"
[[ -n $lsource && $llicenses == Apache-2.0 ]] || die "labels source='$lsource' licenses='$llicenses'"
ok "image $image: user $user, entrypoint $entry, version $lversion, revision $lrevision"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
mport=$(free_port)
[[ $port != "$mport" ]] || mport=$(free_port)

cleanup() {
	local rc=$?
	if [[ $rc -ne 0 ]]; then
		echo "--- container logs ---" >&2
		timeout 20 "${podman[@]}" logs --tail 50 "$name" >&2 2>&1 || true
	fi
	timeout 30 "${podman[@]}" rm -f -t 5 "$name" >/dev/null 2>&1 || true
	exit "$rc"
}
trap cleanup EXIT

# The container as a Kubernetes pod would run it. Explicit ulimits: podman's
# defaults (raise nofile/nproc to the maximum) need CAP_SYS_RESOURCE, which a
# CI sandbox may not give even to root; these only keep or lower the limits.
run=(run -d --name "$name" --pull never --read-only --user 65532
	--cap-drop all --security-opt no-new-privileges
	--ulimit "nofile=$(ulimit -n):$(ulimit -n)" --ulimit "nproc=${NPROC:-4096}:${NPROC:-4096}")
case $network in
publish)
	run+=(-p "127.0.0.1:$port:50051" -p "127.0.0.1:$mport:9090" "$image")
	;;
host)
	run+=(--network host "$image" serve --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport")
	;;
*) die "NETWORK is publish or host, not '$network'" ;;
esac
pd "${run[@]}" >/dev/null || die "podman ${run[*]} failed"
ok "container $name ($network network, runtime ${runtime:-default}) on 127.0.0.1:$port (gRPC), 127.0.0.1:$mport (metrics)"

# 2. Health, polled until SERVING or the deadline (or the container exits).
health() {
	timeout 10 python3 - "$1" "$2" <<'EOF'
import sys, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
addr, service = sys.argv[1], sys.argv[2]
try:
    with grpc.insecure_channel(addr) as ch:
        r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=3)
        print(health_pb2.HealthCheckResponse.ServingStatus.Name(r.status))
except grpc.RpcError as e:
    print(e.code().name)
EOF
}
deadline=$((SECONDS + start_timeout))
until [[ $(health "127.0.0.1:$port" permd.v1.Authorizer) == SERVING ]]; do
	state=$(pd inspect --format '{{.State.Status}}' "$name" || echo gone)
	[[ $state == running ]] || die "container is $state before serving"
	((SECONDS < deadline)) || die "not SERVING within ${start_timeout}s"
	sleep 0.5
done
overall=$(health "127.0.0.1:$port" "")
[[ $overall == SERVING ]] || die "health \"\" is $overall"
ok "grpc.health.v1 Check: \"\" SERVING, permd.v1.Authorizer SERVING"

# 3. One BatchCheck from outside, with the host's binary as the client.
out=$(timeout 30 "$client" check --addr "http://127.0.0.1:$port" \
	--principal carol --action bulk_send_email --demo-contacts 1000) ||
	die "permd check exited $?"
echo "$out" | sed 's/^/    /'
read -r allowed denied < <(echo "$out" | sed -n 's/.*: \([0-9]\+\) allowed, \([0-9]\+\) denied.*/\1 \2/p' | head -n1)
[[ -n ${allowed:-} && -n ${denied:-} ]] || die "no 'N allowed, M denied' in the check output"
((allowed + denied == 1000)) || die "$allowed allowed + $denied denied != 1000"
((allowed > 0)) || die "nothing allowed"
ok "BatchCheck carol bulk_send_email x1000: $allowed allowed, $denied denied"

# 4. Metrics, from outside, counting what was just decided.
metrics=$(timeout 10 python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
	"http://127.0.0.1:$mport/metrics") || die "GET /metrics failed"
grep -q '^permd_record_decisions_total{outcome="ALLOWED"} '"$allowed"'$' <<<"$metrics" ||
	die "/metrics lacks permd_record_decisions_total{outcome=\"ALLOWED\"} $allowed"
ok "/metrics: permd_record_decisions_total{outcome=\"ALLOWED\"} $allowed"

# 5. What the process really runs as, seen from the host.
pid=$(pd inspect --format '{{.State.Pid}}' "$name")
uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")
[[ $uids == "65532 65532 65532 65532" ]] || die "process uids are $uids"
capeff=$(awk '/^CapEff:/ { print $2 }' "/proc/$pid/status")
[[ $capeff == 0000000000000000 ]] || die "process has capabilities $capeff"
ro=$(pd inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$name")
[[ $ro == true ]] || die "rootfs is not read-only"
ok "pid $pid: uid 65532, no capabilities, read-only rootfs"

end=$(date +%s.%N)
printf 'test.sh: PASS %s in %ss\n' "$image" "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')"
