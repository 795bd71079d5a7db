#!/usr/bin/env bash
# CI of @permd/client: builds and packs the package, installs the tarball
# into a scratch project outside the checkout, type-checks against the
# installed declarations and runs test/ there against a real permd.
#
#     PERMD_BIN=target/debug/permd bash clients/node/ci.sh
#
# Needs node >= 20 and npm (the npm registry, for `npm ci` and the install).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
: "${PERMD_BIN:?set PERMD_BIN to the permd binary, e.g. target/debug/permd}"
PERMD_BIN="$(realpath "$PERMD_BIN")"
[ -x "$PERMD_BIN" ] || { echo "PERMD_BIN=$PERMD_BIN is not an executable" >&2; exit 1; }
export PERMD_BIN

node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || { echo "node >= 20 needed, found $(node --version)" >&2; exit 1; }

step() { printf '\n--- %s\n' "$1"; }
npm_quiet=(--no-audit --no-fund --loglevel=error)

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

step "build (npm ci, npm run build)"
cd "$here"
npm ci "${npm_quiet[@]}"
npm run build

step "pack"
mkdir "$scratch/pack"
npm pack --pack-destination "$scratch/pack" --loglevel=error >/dev/null
tgz="$(ls "$scratch"/pack/permd-client-*.tgz)"
listing="$(tar -tzf "$tgz")"
for f in package/package.json package/README.md package/LICENSE \
  package/dist/cjs/index.js package/dist/cjs/index.d.ts \
  package/dist/esm/index.mjs package/dist/esm/index.d.mts \
  package/proto/permd/v1/authorizer.proto package/proto/permd/v1/admin.proto \
  package/proto/grpc/health/v1/health.proto \
  package/proto/grpc/reflection/v1alpha/reflection.proto; do
  grep -qx "$f" <<<"$listing" || { echo "$(basename "$tgz") lacks $f" >&2; exit 1; }
done
if grep -E '^package/(src|test|scripts|node_modules)/' <<<"$listing"; then
  echo "$(basename "$tgz") ships files it should not (above)" >&2
  exit 1
fi
echo "$(basename "$tgz"): $(wc -l <<<"$listing") files"

step "install the tarball into a fresh project"
project="$scratch/project"
mkdir "$project"
cd "$project"
npm init -y >/dev/null
npm install "${npm_quiet[@]}" "$tgz"
cp -R "$here/test" "$project/test"
node -e 'const p = require("@permd/client/package.json"); console.log(`installed ${p.name}@${p.version} (${p.license})`)'

step "type-check against the installed declarations (ESM and CommonJS)"
node "$here/node_modules/typescript/bin/tsc" -p test/types/tsconfig.json

step "tests (node:test) against $PERMD_BIN"
timeout 600 node --test test/client.test.mjs test/require.test.cjs
