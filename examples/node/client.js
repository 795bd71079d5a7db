#!/usr/bin/env node
// A small Node.js gRPC client of permd, on the @permd/client package
// (clients/node: @grpc/grpc-js with the permd.v1 protos shipped inside it).
//
// Lists the server's services through server reflection (v1alpha), checks
// health, then asks one BatchCheck: may `carol` bulk_send_email the first N
// Contacts of the built-in demo tenant? It prints the allowed count and a
// histogram of the denial reasons, in the same format as
// examples/python/client.py (text, or with --json the same JSON object).
//
//     npm ci --prefix examples/node      # also builds clients/node (prepare)
//     permd serve &                      # the demo tenant on 127.0.0.1:50051
//     node examples/node/client.js --count 10000
//     node examples/node/client.js --count 10000 --json
'use strict';

const { parseArgs } = require('node:util');

const { Client, PermdError } = require('@permd/client');

const SERVICE = 'permd.v1.Authorizer';
const RPC_TIMEOUT_MS = 30_000;

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

async function batchCheck(client, args) {
  const ids = Array.from({ length: args.count }, (_, n) => demoContactId(n));
  // `carol`, `integration:ID`, `automation:ID` (as `permd check` reads them).
  const answer = await client.batchCheck({
    tenant: args.tenant,
    principal: args.principal,
    object: 'contacts',
    action: args.action,
    ids,
    packed: args.packed,
    context: { subscriptionList: args.list ?? '' },
  });
  const denials = {};
  for (const name of Object.keys(answer.countsByReason).sort()) {
    denials[name] = answer.countsByReason[name];
  }
  return {
    count: args.count,
    allowed_count: answer.allowedCount,
    allowed_bits: answer.allowed.filter(Boolean).length,
    denied_count: answer.denials.length,
    denials,
    revision: answer.revision,
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

  const client = new Client(args.addr, { timeoutMs: RPC_TIMEOUT_MS });
  let services;
  let status;
  let result;
  try {
    await client.waitForReady().catch((err) => fail(err.details ?? err.message));
    try {
      services = await client.listServices();
      status = await client.health(SERVICE);
      result = await batchCheck(client, args);
    } catch (err) {
      if (!(err instanceof PermdError)) throw err;
      fail(`permd refused: ${err.code}: ${err.details}`);
    }
  } finally {
    client.close();
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
