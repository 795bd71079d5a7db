#!/usr/bin/env bash
# Generates the Go stubs of permd.v1 (../../proto/permd/v1/*.proto) into
# gen/permd/v1 (package permdv1) with protoc, protoc-gen-go and
# protoc-gen-go-grpc from PATH -- on Debian 12 the packages protobuf-compiler,
# protoc-gen-go (1.28.1) and protoc-gen-go-grpc (1.0, from grpc-go 1.33.3).
# gen/ is not committed: ci.sh runs this before every build (well under a second).
#
# paths=source_relative puts the files next to the proto's own path under
# gen/, so the package is imported as
#   github.com/permd/permd/clients/go/gen/permd/v1
# whatever the proto's go_package says (nothing imports it by that path:
# authorizer.proto and admin.proto import no other permd file).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
proto_root="$(cd "$here/../../proto" && pwd)"
out="$here/gen"

for tool in protoc protoc-gen-go protoc-gen-go-grpc; do
  command -v "$tool" >/dev/null || { echo "generate.sh: $tool not found on PATH" >&2; exit 1; }
done

rm -rf "$out"
mkdir -p "$out"
protoc -I "$proto_root" \
  --go_out="$out" --go_opt=paths=source_relative \
  --go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
  permd/v1/authorizer.proto permd/v1/admin.proto
echo "generated: $(cd "$here" && find gen -name '*.go' | sort | tr '\n' ' ')"
