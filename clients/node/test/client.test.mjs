// @permd/client against a real permd (PERMD_BIN) serving the demo tenant.
// Imports the package by name: run from a project that has it installed
// (clients/node/ci.sh installs the packed tarball into a scratch project),
// or from clients/node itself after `npm run build` (a self-reference).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Client, PermdError, PROTO_DIR, packUuids, parsePrincipal, unpackUuids } from '@permd/client';

import { demoContactId, startPermd } from './server.mjs';

const KNOWN_REASONS = new Set([
  'UNKNOWN_RECORD', 'OBJECT_NOT_VISIBLE', 'ARCHIVED', 'NOT_ARCHIVED', 'NO_RECORD_ACCESS',
  'ACTION_NOT_PERMITTED', 'FIELD_RESTRICTED', 'NO_EMAIL', 'SUPPRESSED', 'UNSUBSCRIBED',
  'OPTED_OUT_OF_LIST', 'EMAIL_NOT_CONFIGURED', 'SENDER_BLOCKED', 'NO_MOBILE', 'SMS_OPTED_OUT',
  'SMS_NOT_CONFIGURED', 'SYSTEM_MANAGED', 'SINGLE_RECORD_ONLY',
]);
const IDS = Array.from({ length: 1000 }, (_, n) => demoContactId(n));
const CAROL_MAILS = { tenant: 'demo', principal: 'user:carol', action: 'bulk_send_email', ids: IDS };

/** Resolves to the PermdError `promise` rejects with; fails if it resolves. */
async function refusal(promise) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof PermdError, `a PermdError, not ${err?.stack ?? err}`);
    assert.ok(err instanceof Error);
    return err;
  }
  assert.fail('expected a PermdError');
}

describe('against permd serving the demo tenant', { timeout: 120_000 }, () => {
  let server;
  let client;

  before(async () => {
    server = await startPermd();
    client = new Client(server.addr, { timeoutMs: 20_000 });
    await client.waitForReady();
  });

  after(async () => {
    client?.close();
    await server?.stop();
  });

  test('health and reflection', async () => {
    assert.equal(await client.health(), 'SERVING');
    assert.equal(await client.health(''), 'SERVING');
    const services = await client.listServices();
    assert.ok(services.includes('permd.v1.Authorizer'), String(services));
    assert.ok(services.includes('grpc.health.v1.Health'), String(services));
    const err = await refusal(client.health('no.such.Service'));
    assert.equal(err.code, 'NOT_FOUND');
  });

  test('packed and string ids give the same answer over the first 1000 Contacts', async () => {
    const packed = await client.batchCheck(CAROL_MAILS);
    const strings = await client.batchCheck({ ...CAROL_MAILS, packed: false });
    assert.deepStrictEqual(packed, strings);
    // packed is the default
    assert.deepStrictEqual(await client.batchCheck({ ...CAROL_MAILS, packed: true }), packed);
  });

  test('record handles: cached, sent instead of ids, renewed when refused', async () => {
    // Records which form each BatchCheck carries; with `stale`, turns the
    // handles into ones permd never gave out (as after its restart).
    const sent = [];
    let stale = false;
    const recording = (options, nextCall) =>
      new grpc.InterceptingCall(nextCall(options), {
        sendMessage(message, next) {
          sent.push(message.record_handles ? 'handles' : 'ids');
          if (stale && message.record_handles) {
            const space = (BigInt(message.record_handles.space) ^ 1n).toString();
            next({ ...message, record_handles: { ...message.record_handles, space } });
            return;
          }
          next(message);
        },
      });
    const caching = new Client(server.addr, { timeoutMs: 20_000, recordHandles: true, channelOptions: { interceptors: [recording] } });
    try {
      const expected = await client.batchCheck(CAROL_MAILS);
      assert.ok(expected.allowedIds.length > 0 && expected.denials.length > 0, 'a mixed answer');
      assert.deepStrictEqual(await caching.batchCheck(CAROL_MAILS), expected);
      assert.equal(caching.cachedHandles('demo'), IDS.length);
      assert.deepStrictEqual(await caching.batchCheck(CAROL_MAILS), expected);
      assert.deepStrictEqual(sent, ['ids', 'handles']);
      // A subset in another order; then an id permd never saw: by ids.
      const some = IDS.slice(0, 300).reverse();
      sent.length = 0;
      assert.deepStrictEqual(await caching.batchCheck({ ...CAROL_MAILS, ids: some }), await client.batchCheck({ ...CAROL_MAILS, ids: some }));
      const unseen = [...some, 'c0000000-0000-4000-8000-00000fffffff'];
      assert.deepStrictEqual(await caching.batchCheck({ ...CAROL_MAILS, ids: unseen }), await client.batchCheck({ ...CAROL_MAILS, ids: unseen }));
      assert.deepStrictEqual(sent, ['handles', 'ids']);
      // Refused handles are forgotten and the ids sent again: same answer.
      stale = true;
      sent.length = 0;
      assert.deepStrictEqual(await caching.batchCheck(CAROL_MAILS), expected);
      assert.deepStrictEqual(sent, ['handles', 'ids']);
      // Another refusal is not retried.
      stale = false;
      sent.length = 0;
      const err = await refusal(caching.batchCheck({ ...CAROL_MAILS, principal: 'user:nobody' }));
      assert.equal(err.code, 'NOT_FOUND');
      assert.deepStrictEqual(sent, ['handles']);
    } finally {
      caching.close();
    }
    const small = new Client(server.addr, { recordHandles: true, maxCachedHandles: 500 });
    try {
      await small.batchCheck({ ...CAROL_MAILS, ids: IDS.slice(0, 400) });
      await small.batchCheck({ ...CAROL_MAILS, ids: IDS.slice(400, 800) });
      assert.equal(small.cachedHandles('demo'), 400, 'past the bound the cache starts again');
    } finally {
      small.close();
    }
    assert.throws(() => new Client(server.addr, { recordHandles: true, maxCachedHandles: 0 }), PermdError);
  });

  test('counts add up, a denial reason appears', async () => {
    const a = await client.batchCheck(CAROL_MAILS);
    assert.equal(typeof a.revision, 'bigint');
    assert.equal(a.revision, 1n);
    assert.equal(a.allowed.length, IDS.length);
    assert.equal(a.allowedIds.length, a.allowedCount, 'bitmask agrees with allowed_count');
    assert.equal(a.allowed.filter(Boolean).length, a.allowedCount);
    const denied = Object.values(a.countsByReason).reduce((x, y) => x + y, 0);
    assert.equal(a.allowedCount + denied, IDS.length);
    assert.equal(Object.keys(a.reasons).length, denied);
    assert.equal(a.denials.length, denied);
    assert.ok(a.allowedCount > 0 && denied > 0, `a mixed answer: ${JSON.stringify(a.countsByReason)}`);
    for (const reason of Object.keys(a.countsByReason)) assert.ok(KNOWN_REASONS.has(reason), reason);
    assert.ok(a.countsByReason.NO_EMAIL > 0, `carol cannot mail Contacts without email: ${JSON.stringify(a.countsByReason)}`);
    // every id is either allowed or has a reason, never both, in request order
    const allowedSet = new Set(a.allowedIds);
    IDS.forEach((id, i) => {
      assert.equal(a.allowed[i], allowedSet.has(id), id);
      assert.equal(a.allowed[i], !(id in a.reasons), id);
    });
    assert.deepStrictEqual(a.allowedIds, IDS.filter((_, i) => a.allowed[i]));
    for (const d of a.denials) assert.equal(a.reasons[d.id], d.reason);
    // one field mask for the object
    assert.ok(Object.keys(a.fieldMask).length > 0);
    for (const level of Object.values(a.fieldMask)) assert.ok(['NONE', 'VIEW', 'EDIT'].includes(level), level);
  });

  test('principal kinds, context and min_revision reach the server', async () => {
    // a bare id is a user, as `permd check` reads it
    assert.deepStrictEqual(await client.batchCheck({ ...CAROL_MAILS, principal: 'carol' }), await client.batchCheck(CAROL_MAILS));
    const onList = await client.batchCheck({
      ...CAROL_MAILS,
      principal: { kind: 'USER', id: 'alice' },
      context: { subscriptionList: 'newsletter' },
    });
    assert.ok(onList.countsByReason.OPTED_OUT_OF_LIST > 0, JSON.stringify(onList.countsByReason));
    assert.equal((await client.batchCheck({ ...CAROL_MAILS, minRevision: 1n })).revision, 1n);
    assert.equal((await client.batchCheck({ ...CAROL_MAILS, minRevision: '1' })).revision, 1n);
    const ahead = await refusal(client.batchCheck({ ...CAROL_MAILS, minRevision: 10n ** 12n }));
    assert.equal(ahead.code, 'FAILED_PRECONDITION');
  });

  test('ids in other UUID forms pack to the same records', async () => {
    const forms = [IDS[1].toUpperCase(), IDS[2].replaceAll('-', ''), `{${IDS[3]}}`, `urn:uuid:${IDS[4]}`];
    assert.deepStrictEqual(unpackUuids(packUuids(forms)), IDS.slice(1, 5));
    const a = await client.batchCheck({ ...CAROL_MAILS, ids: forms });
    const b = await client.batchCheck({ ...CAROL_MAILS, ids: IDS.slice(1, 5) });
    assert.deepStrictEqual(a.allowed, b.allowed);
    assert.deepStrictEqual(a.allowedIds, forms.filter((_, i) => b.allowed[i]), 'ids come back as they were passed');
  });

  test('an empty batch', async () => {
    const a = await client.batchCheck({ ...CAROL_MAILS, ids: [] });
    assert.deepStrictEqual([a.allowedIds, a.allowed, a.allowedCount, a.countsByReason], [[], [], 0, {}]);
  });

  test('unknown tenant: NOT_FOUND', async () => {
    for (const packed of [true, false]) {
      const err = await refusal(client.batchCheck({ ...CAROL_MAILS, tenant: 'nope', packed }));
      assert.equal(err.code, 'NOT_FOUND');
      assert.equal(err.grpcCode, grpc.status.NOT_FOUND);
      assert.match(err.details, /nope/);
      assert.match(err.message, /^NOT_FOUND: /);
    }
  });

  test('unknown principal: NOT_FOUND; bad principal: INVALID_ARGUMENT', async () => {
    const unknown = await refusal(client.batchCheck({ ...CAROL_MAILS, principal: 'user:nobody' }));
    assert.equal(unknown.code, 'NOT_FOUND');
    // an empty id is refused by the server
    for (const principal of ['user:', '', 'integration:']) {
      const err = await refusal(client.batchCheck({ ...CAROL_MAILS, principal }));
      assert.equal(err.code, 'INVALID_ARGUMENT', principal);
      assert.match(err.details, /principal/);
    }
    // an unknown kind is refused before sending
    const kind = await refusal(client.batchCheck({ ...CAROL_MAILS, principal: { kind: 'ROBOT', id: 'x' } }));
    assert.equal(kind.code, 'INVALID_ARGUMENT');
    assert.match(kind.details, /principal\.kind/);
  });

  test('ids that are not UUIDs: INVALID_ARGUMENT, packed or not', async () => {
    const ids = [IDS[0], 'not-a-uuid'];
    const packed = await refusal(client.batchCheck({ ...CAROL_MAILS, ids }));
    assert.equal(packed.code, 'INVALID_ARGUMENT');
    assert.match(packed.details, /ids\[1\]: 'not-a-uuid' is not a UUID/);
    const strings = await refusal(client.batchCheck({ ...CAROL_MAILS, ids, packed: false }));
    assert.equal(strings.code, 'INVALID_ARGUMENT');
    assert.match(strings.details, /not-a-uuid/);
    const revision = await refusal(client.batchCheck({ ...CAROL_MAILS, minRevision: -1 }));
    assert.equal(revision.code, 'INVALID_ARGUMENT');
  });

  test('a closed client refuses calls', async () => {
    const c = new Client(server.addr, { timeoutMs: 5_000 });
    assert.equal(await c.health(), 'SERVING');
    c.close();
    const err = await refusal(c.health());
    assert.equal(err.code, 'FAILED_PRECONDITION');
  });
});

describe('without a server', { timeout: 30_000 }, () => {
  test('nothing listening: UNAVAILABLE', async () => {
    // a port that was free a moment ago
    const probe = new grpc.Server();
    const port = await new Promise((resolve, reject) =>
      probe.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    await new Promise((resolve) => probe.tryShutdown(resolve));
    const c = new Client(`127.0.0.1:${port}`, { timeoutMs: 2_000 });
    try {
      assert.equal((await refusal(c.health())).code, 'UNAVAILABLE');
      assert.equal((await refusal(c.waitForReady(500))).code, 'UNAVAILABLE');
    } finally {
      c.close();
    }
  });

  test('parsePrincipal', () => {
    assert.deepStrictEqual(parsePrincipal('user:carol'), { kind: 'USER', id: 'carol' });
    assert.deepStrictEqual(parsePrincipal('integration:k1'), { kind: 'INTEGRATION', id: 'k1' });
    assert.deepStrictEqual(parsePrincipal('automation:a:b'), { kind: 'AUTOMATION', id: 'a:b' });
    assert.deepStrictEqual(parsePrincipal('carol'), { kind: 'USER', id: 'carol' });
    assert.deepStrictEqual(parsePrincipal('robot:x'), { kind: 'USER', id: 'robot:x' });
  });

  // A stand-in Health server that records the metadata it gets, and one
  // method that never answers: the token and the deadline, seen from the
  // server side.
  test('token as bearer metadata; timeoutMs as the deadline', async () => {
    const def = protoLoader.loadSync(`${PROTO_DIR}/grpc/health/v1/health.proto`, { keepCase: true, enums: String });
    const { Health } = grpc.loadPackageDefinition(def).grpc.health.v1;
    const seen = [];
    const server = new grpc.Server();
    server.addService(Health.service, {
      Check(call, callback) {
        seen.push(call.metadata.get('authorization'));
        if (call.request.service === 'slow') return; // never answers
        callback(null, { status: 'SERVING' });
      },
    });
    const port = await new Promise((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    const withToken = new Client(`127.0.0.1:${port}`, { token: 's3cret-token-0123456789', timeoutMs: 300 });
    const without = new Client(`127.0.0.1:${port}`);
    try {
      assert.equal(await withToken.health(), 'SERVING');
      assert.equal(await without.health(), 'SERVING');
      assert.deepStrictEqual(seen, [['Bearer s3cret-token-0123456789'], []]);
      const started = Date.now();
      const err = await refusal(withToken.health('slow'));
      assert.equal(err.code, 'DEADLINE_EXCEEDED');
      assert.ok(Date.now() - started < 5_000, 'the 300 ms deadline, not the 30 s default');
    } finally {
      withToken.close();
      without.close();
      server.forceShutdown();
    }
  });
});
