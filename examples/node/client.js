#!/usr/bin/env node
// A small Node.js gRPC client of permd (@grpc/grpc-js + @grpc/proto-loader).
//
// Loads permd.v1 from ../../proto at run time (nothing generated is
// committed), lists the server's services through server reflection
// (v1alpha), checks health, then asks one BatchCheck: may `carol`
// bulk_send_email the first N Contacts of the built-in demo tenant? It prints
// the allowed count and a histogram of the denial reasons, in the same format
// as examples/python/client.py (text, or with --json the same JSON object).
//
//     npm ci --prefix examples/node
//     permd serve &                      # the demo tenant on 127.0.0.1:50051
//     node examples/node/client.js --count 10000
//     node examples/node/client.js --count 10000 --json
'use strict';

const path = require('node:path');
const { parseArgs } = require('node:util');

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.join(__dirname, '..', '..', 'proto');
const PROTO_FILE = path.join(PROTO_ROOT, 'permd', 'v1', 'authorizer.proto');
// Health and reflection: neither grpc-js nor proto-loader ships them.
const GRPC_PROTO_ROOT = path.join(__dirname, 'proto');
const SERVICE = 'permd.v1.Authorizer';
const RPC_TIMEOUT_MS = 30_000;
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

// Without keepCase proto-loader renames fields to camelCase, and a request
// written with the proto's snake_case names (record_ids, packed_record_ids,
// allowed_count) would have those fields silently dropped.
const LOADER_OPTIONS = {
  keepCase: true,
  longs: String, // uint64 revision: exact as a decimal string
  enums: String, // Reason, Principal.Kind, ServingStatus by name
  bytes: Buffer,
  defaults: true, // absent scalars read as 0 / '' / [] rather than undefined
  oneofs: true, // the name of the set oneof member, e.g. `records`
};

const USAGE_LINE = `usage: client.js [-h] [--addr ADDR] [--count COUNT] [--tenant TENANT]
                 [--principal PRINCIPAL] [--action ACTION] [--list LIST]
                 [--packed] [--json]`;
const USAGE = `${USAGE_LINE}

A small Node.js gRPC client of permd.

options:
  -h, --help             show this help message and exit
  --addr ADDR            host:port of permd (default 127.0.0.1:50051)
  --count COUNT          demo Contacts to check (default 10000)
  --tenant TENANT        (default demo)
  --principal PRINCIPAL  a user id, or integration:ID / automation:ID
                         (default carol)
  --action ACTION        (default bulk_send_email)
  --list LIST            subscription list the mail goes out on
  --packed               send 16-byte packed ids
  --json                 print one JSON object`;

/** Exits like argparse does on a usage error. */
function usageError(message) {
  process.stderr.write(`${USAGE_LINE}\nclient.js: error: ${message}\n`);
  process.exit(2);
}

/** Exits non-zero with a message on stderr, like Python's SystemExit(msg). */
function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

function parseCli(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        help: { type: 'boolean', short: 'h' },
        addr: { type: 'string', default: '127.0.0.1:50051' },
        count: { type: 'string', default: '10000' },
        tenant: { type: 'string', default: 'demo' },
        principal: { type: 'string', default: 'carol' },
        action: { type: 'string', default: 'bulk_send_email' },
        list: { type: 'string' },
        packed: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
    });
  } catch (e) {
    usageError(e.message);
  }
  const args = parsed.values;
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const count = args.count.trim();
  if (!/^[+-]?\d+$/.test(count)) {
    usageError(`argument --count: invalid int value: '${args.count}'`);
  }
  args.count = Number(count);
  if (args.count < 0) usageError('--count must be at least 0');
  if (!Number.isSafeInteger(args.count)) usageError('--count is too large');
  return args;
}

/** Id of the n-th demo Contact (src/source/demo.rs `contact_id`). */
function demoContactId(n) {
  return `c0000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

/** `ID` for a user, or `integration:ID`, `automation:ID` (as `permd check`). */
function principal(spec) {
  const colon = spec.indexOf(':');
  const kinds = { user: 'USER', integration: 'INTEGRATION', automation: 'AUTOMATION' };
  if (colon > 0 && kinds[spec.slice(0, colon)]) {
    return { kind: kinds[spec.slice(0, colon)], id: spec.slice(colon + 1) };
  }
  return { kind: 'USER', id: spec };
}

function load(file, includeDirs) {
  return grpc.loadPackageDefinition(
    protoLoader.loadSync(file, { ...LOADER_OPTIONS, includeDirs }),
  );
}

function deadline() {
  return new Date(Date.now() + RPC_TIMEOUT_MS);
}

/** The name of a gRPC status code, e.g. 5 -> NOT_FOUND. */
function statusName(code) {
  return grpc.status[code] ?? `STATUS_${code}`;
}

function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: deadline() }, (err, resp) =>
      err ? reject(err) : resolve(resp),
    );
  });
}

/** Services listed by server reflection v1alpha, sorted. */
function listServices(reflection) {
  return new Promise((resolve, reject) => {
    const names = [];
    const call = reflection.ServerReflectionInfo({ deadline: deadline() });
    call.on('data', (resp) => {
      if (resp.message_response === 'list_services_response') {
        for (const s of resp.list_services_response.service) names.push(s.name);
      } else if (resp.message_response === 'error_response') {
        const e = new Error(resp.error_response.error_message);
        e.code = resp.error_response.error_code;
        e.details = resp.error_response.error_message;
        call.cancel();
        reject(e);
      }
    });
    call.on('error', reject);
    call.on('end', () => resolve(names.sort()));
    call.write({ host: '', list_services: '' });
    call.end();
  });
}

async function health(healthClient, service) {
  const resp = await unary(healthClient, 'Check', { service });
  return String(resp.status);
}

function reasonName(reason) {
  // enums: String gives the name; a reason newer than this proto stays a number.
  return typeof reason === 'number' ? `UNKNOWN_REASON_${reason}` : reason;
}

async function batchCheck(authorizer, args) {
  const ids = Array.from({ length: args.count }, (_, n) => demoContactId(n));
  const request = {
    tenant: args.tenant,
    principal: principal(args.principal),
    object: 'contacts',
    action: args.action,
    context: { subscription_list: args.list ?? '' },
  };
  if (args.packed) {
    request.packed_record_ids = {
      uuids: Buffer.concat(ids.map((id) => Buffer.from(id.replaceAll('-', ''), 'hex'))),
    };
  } else {
    request.record_ids = { ids };
  }
  const resp = await unary(authorizer, 'BatchCheck', request);
  const histogram = new Map();
  for (const d of resp.denials) {
    const name = reasonName(d.reason);
    histogram.set(name, (histogram.get(name) ?? 0) + 1);
  }
  let allowedBits = 0;
  for (let i = 0; i < args.count; i++) {
    if (((resp.allowed[i >> 3] ?? 0) >> (i & 7)) & 1) allowedBits++;
  }
  const denials = {};
  for (const name of [...histogram.keys()].sort()) denials[name] = histogram.get(name);
  return {
    count: args.count,
    allowed_count: resp.allowed_count,
    allowed_bits: allowedBits,
    denied_count: resp.denials.length,
    denials,
    revision: BigInt(resp.revision),
  };
}

/**
 * JSON as Python's `json.dumps(obj, sort_keys=True)` writes it: ", " and
 * ": " separators, sorted keys, non-ASCII escaped; BigInt as its digits.
 */
function pyJson(v) {
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'string') {
    return JSON.stringify(v).replace(
      /[\u0080-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
  }
  if (Array.isArray(v)) return `[${v.map(pyJson).join(', ')}]`;
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${pyJson(k)}: ${pyJson(v[k])}`).join(', ')}}`;
  }
  return JSON.stringify(v);
}

async function main() {
  const args = parseCli(process.argv.slice(2));

  const permd = load(PROTO_FILE, [PROTO_ROOT]).permd.v1;
  const grpcPkg = load(
    [
      path.join(GRPC_PROTO_ROOT, 'grpc', 'health', 'v1', 'health.proto'),
      path.join(GRPC_PROTO_ROOT, 'grpc', 'reflection', 'v1alpha', 'reflection.proto'),
    ],
    [GRPC_PROTO_ROOT],
  ).grpc;

  const authorizer = new permd.Authorizer(args.addr, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  });
  // One connection for all three services.
  const shared = { channelOverride: authorizer.getChannel() };
  const healthClient = new grpcPkg.health.v1.Health(args.addr, null, shared);
  const reflection = new grpcPkg.reflection.v1alpha.ServerReflection(args.addr, null, shared);

  let services;
  let status;
  let result;
  try {
    await new Promise((resolve, reject) =>
      authorizer.waitForReady(deadline(), (err) => (err ? reject(err) : resolve())),
    ).catch((err) => fail(`permd not reachable at ${args.addr}: ${err.message}`));
    try {
      services = await listServices(reflection);
      status = await health(healthClient, SERVICE);
      result = await batchCheck(authorizer, args);
    } catch (err) {
      if (err.code === undefined) throw err;
      fail(`permd refused: ${statusName(err.code)}: ${err.details ?? err.message}`);
    }
  } finally {
    authorizer.close();
  }

  const report = {
    services,
    health: status,
    tenant: args.tenant,
    principal: args.principal,
    action: args.action,
    ...result,
  };
  if (args.json) {
    process.stdout.write(`${pyJson(report)}\n`);
    return;
  }
  const lines = ['services (reflection v1alpha):'];
  for (const s of services) lines.push(`  ${s}`);
  lines.push(`health of ${SERVICE}: ${status}`);
  lines.push(
    `${args.principal} ${args.action} on ${args.count} contacts of ${args.tenant} ` +
      `(revision ${result.revision}): ${result.allowed_count} allowed, ` +
      `${result.denied_count} denied`,
  );
  const byCount = Object.entries(result.denials).sort(
    ([ra, na], [rb, nb]) => nb - na || (ra < rb ? -1 : ra > rb ? 1 : 0),
  );
  for (const [reason, n] of byCount) {
    lines.push(`  ${reason.padEnd(22)} ${String(n).padStart(6)}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((err) => fail(`client.js: ${err.stack ?? err}`));
