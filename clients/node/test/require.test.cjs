// Both module formats of @permd/client: `require` gets the CommonJS build,
// `import` the ESM entry, and they are the same classes.
'use strict';

const assert = require('node:assert/strict');
const { existsSync } = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');

const cjs = require('@permd/client');

test('require and import give the same bindings', async () => {
  const esm = await import('@permd/client');
  for (const name of ['Client', 'PermdError', 'PROTO_DIR', 'packUuids', 'parsePrincipal', 'statusName', 'unpackUuids']) {
    assert.ok(cjs[name] !== undefined, `require: ${name}`);
    assert.equal(esm[name], cjs[name], `import and require share ${name}`);
  }
});

test('the protos ship inside the package', () => {
  for (const f of ['permd/v1/authorizer.proto', 'permd/v1/admin.proto', 'grpc/health/v1/health.proto']) {
    assert.ok(existsSync(path.join(cjs.PROTO_DIR, f)), f);
  }
  const pkgDir = path.dirname(require.resolve('@permd/client/package.json'));
  assert.equal(path.relative(pkgDir, cjs.PROTO_DIR), 'proto', 'PROTO_DIR is inside the installed package');
});

test('PermdError', () => {
  const e = new cjs.PermdError('NOT_FOUND', 'tenant x');
  assert.ok(e instanceof Error);
  assert.equal(e.name, 'PermdError');
  assert.equal(e.code, 'NOT_FOUND');
  assert.equal(e.grpcCode, 5);
  assert.equal(e.details, 'tenant x');
  assert.equal(e.message, 'NOT_FOUND: tenant x');
  assert.equal(cjs.statusName(3), 'INVALID_ARGUMENT');
});
