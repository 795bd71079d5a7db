import * as path from 'node:path';

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

import { fromGrpcError, invalidArgument, PermdError, statusName } from './errors';
import { packUuids } from './ids';
import type {
  ActionContext,
  Answer,
  BatchCheckRequest,
  ClientOptions,
  Denial,
  FieldLevelName,
  HealthStatus,
  Principal,
  PrincipalKind,
  ReasonName,
  RevisionLike,
} from './types';

/** The .proto files shipped in this package: permd/v1/*.proto, grpc/health, grpc/reflection. */
export const PROTO_DIR: string = path.join(__dirname, '..', '..', 'proto');

const PROTO_FILES = [
  'permd/v1/authorizer.proto',
  'grpc/health/v1/health.proto',
  'grpc/reflection/v1alpha/reflection.proto',
];

// keepCase: requests and responses use the proto's snake_case names
// (without it proto-loader renames them and snake_case fields are dropped).
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String, // uint64 revision: exact, as a decimal string
  enums: String, // Reason, FieldLevel, ServingStatus by name
  bytes: Buffer,
  defaults: true,
  oneofs: true,
};

const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const UINT64_MAX = (1n << 64n) - 1n;
const AUTHORIZER_SERVICE = 'permd.v1.Authorizer';
const DEFAULT_MAX_CACHED_HANDLES = 2_000_000;
/** The handle permd returns for an id it has never seen: not cached. */
const NO_HANDLE = 0xffffffff;
/** How permd's FAILED_PRECONDITION for handles it did not give out begins. */
const STALE_HANDLES = 'record_handles were not given out';

/** The record handles one permd gave for ids, per `tenant\0object`, with their space. */
class Handles {
  readonly #limit: number;
  readonly #byObject = new Map<string, { space: string; table: Map<string, number> }>();

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** The space and packed handles of `ids`, if every one has a handle. */
  packed(key: string, ids: readonly string[]): { space: string; ordinals: Buffer } | undefined {
    const entry = this.#byObject.get(key);
    if (entry === undefined || ids.length === 0) return undefined;
    const ordinals = Buffer.allocUnsafe(4 * ids.length);
    for (let i = 0; i < ids.length; i++) {
      const h = entry.table.get(ids[i] as string);
      if (h === undefined) return undefined;
      ordinals.writeUInt32LE(h, 4 * i);
    }
    return { space: entry.space, ordinals };
  }

  learn(key: string, ids: readonly string[], handles: { space: string; ordinals: Buffer }): void {
    if (handles.ordinals.length !== 4 * ids.length) {
      throw new PermdError('INTERNAL', `handles: ${handles.ordinals.length} bytes for ${ids.length} ids`);
    }
    let entry = this.#byObject.get(key);
    if (entry === undefined || entry.space !== handles.space || entry.table.size + ids.length > this.#limit) {
      // Another index (a restart, a reload): the old handles are void. Or
      // the cache is full: it starts again from this batch.
      entry = { space: handles.space, table: new Map() };
      this.#byObject.set(key, entry);
    }
    for (let i = 0; i < ids.length; i++) {
      const h = handles.ordinals.readUInt32LE(4 * i);
      if (h !== NO_HANDLE) entry.table.set(ids[i] as string, h);
    }
  }

  forget(key: string): void {
    this.#byObject.delete(key);
  }

  /** Cached handles of one object (for tests and metrics). */
  size(key: string): number {
    return this.#byObject.get(key)?.table.size ?? 0;
  }
}

interface Stubs {
  Authorizer: grpc.ServiceClientConstructor;
  Health: grpc.ServiceClientConstructor;
  Reflection: grpc.ServiceClientConstructor;
  /** Reason number → name: packed denials carry the numbers. */
  reasonNames: Map<number, string>;
}

let stubs: Stubs | undefined;

/** The service constructors, loaded once from the shipped .proto files. */
function loadStubs(): Stubs {
  if (stubs === undefined) {
    const definition = protoLoader.loadSync(
      PROTO_FILES.map((f) => path.join(PROTO_DIR, f)),
      { ...LOADER_OPTIONS, includeDirs: [PROTO_DIR] },
    );
    const pkg = grpc.loadPackageDefinition(definition) as any;
    const reasons = definition['permd.v1.Reason'] as protoLoader.EnumTypeDefinition;
    const reasonNames = new Map<number, string>();
    for (const v of (reasons.type as { value: { name: string; number: number }[] }).value) {
      reasonNames.set(v.number, v.name);
    }
    stubs = {
      Authorizer: pkg.permd.v1.Authorizer,
      Health: pkg.grpc.health.v1.Health,
      Reflection: pkg.grpc.reflection.v1alpha.ServerReflection,
      reasonNames,
    };
  }
  return stubs;
}

const PRINCIPAL_KINDS: Record<string, PrincipalKind> = {
  user: 'USER',
  integration: 'INTEGRATION',
  automation: 'AUTOMATION',
};

/**
 * `"user:carol"`, `"integration:ID"` or `"automation:ID"` as a Principal; a
 * string without one of those prefixes is a user id (as `permd check`
 * reads it). A `{kind, id}` object is checked and returned.
 */
export function parsePrincipal(spec: string | Principal): Principal {
  if (typeof spec === 'string') {
    const colon = spec.indexOf(':');
    const kind = colon > 0 ? PRINCIPAL_KINDS[spec.slice(0, colon)] : undefined;
    return kind === undefined ? { kind: 'USER', id: spec } : { kind, id: spec.slice(colon + 1) };
  }
  if (spec === null || typeof spec !== 'object') {
    throw invalidArgument('principal must be a string like "user:carol" or {kind, id}');
  }
  if (!Object.values(PRINCIPAL_KINDS).includes(spec.kind)) {
    throw invalidArgument(`principal.kind ${JSON.stringify(spec.kind)} is unknown; use USER, INTEGRATION or AUTOMATION`);
  }
  if (typeof spec.id !== 'string') throw invalidArgument('principal.id must be a string');
  return { kind: spec.kind, id: spec.id };
}

function uint64(field: string, value: RevisionLike | undefined): string {
  if (value === undefined) return '0';
  let v: bigint | undefined;
  if (typeof value === 'bigint') v = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value)) v = BigInt(value);
  else if (typeof value === 'string' && /^[0-9]{1,20}$/.test(value)) v = BigInt(value);
  if (v === undefined || v < 0n || v > UINT64_MAX) {
    throw invalidArgument(`${field}: ${String(value)} is not a uint64`);
  }
  return v.toString();
}

function context(ctx: ActionContext | undefined): Record<string, unknown> {
  if (ctx === undefined) return {};
  if (ctx.channel !== undefined && ctx.channel !== 'EMAIL' && ctx.channel !== 'TEXT') {
    throw invalidArgument(`context.channel ${JSON.stringify(ctx.channel)} is unknown; use EMAIL or TEXT`);
  }
  return {
    channel: ctx.channel ?? 'CHANNEL_UNSPECIFIED',
    transactional: ctx.transactional ?? false,
    subscription_list: ctx.subscriptionList ?? '',
    fields: [...(ctx.fields ?? [])],
    target_email_status: ctx.targetEmailStatus ?? '',
  };
}

function enumName<T extends string>(value: string | number, prefix: string): T {
  // enums: String gives the name; a value newer than the shipped protos stays a number.
  return (typeof value === 'number' ? `${prefix}${value}` : value) as T;
}

interface RawBatchCheckResponse {
  allowed: Buffer;
  allowed_count: number;
  denials: { position: number; reason: string | number }[];
  packed_denials: { positions: Buffer; reasons: Buffer } | null;
  handles: { space: string; ordinals: Buffer } | null;
  field_mask: { fields: Record<string, string | number> } | null;
  revision: string;
}

interface RawReflectionResponse {
  message_response?: string;
  list_services_response?: { service: { name: string }[] };
  error_response?: { error_code: number; error_message: string };
}

type Callback<T> = (err: grpc.ServiceError | null, value?: T) => void;
type UnaryMethod<T> = (request: object, metadata: grpc.Metadata, options: grpc.CallOptions, callback: Callback<T>) => grpc.ClientUnaryCall;

/**
 * A connection to one permd. Calls share one HTTP/2 channel; each has a
 * deadline of `timeoutMs`. Refusals reject with a {@link PermdError}.
 *
 * ```ts
 * const client = new Client('127.0.0.1:50051');
 * const answer = await client.batchCheck({ tenant: 'demo', principal: 'user:carol', action: 'view', ids });
 * client.close();
 * ```
 */
export class Client {
  /** host:port as given. */
  readonly address: string;
  /** Deadline of each call, in milliseconds. */
  readonly timeoutMs: number;
  readonly #authorizer: grpc.Client;
  readonly #health: grpc.Client;
  readonly #reflection: grpc.Client;
  readonly #token: string | undefined;
  readonly #handles: Handles | undefined;
  #closed = false;

  constructor(address: string, options: ClientOptions = {}) {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw invalidArgument(`timeoutMs must be a positive number of milliseconds, not ${String(timeoutMs)}`);
    }
    this.address = address;
    this.timeoutMs = timeoutMs;
    this.#token = options.token;
    const maxCached = options.maxCachedHandles ?? DEFAULT_MAX_CACHED_HANDLES;
    if (!Number.isSafeInteger(maxCached) || maxCached < 1) {
      throw invalidArgument(`maxCachedHandles must be a positive integer, not ${String(maxCached)}`);
    }
    this.#handles = options.recordHandles === true ? new Handles(maxCached) : undefined;
    let creds: grpc.ChannelCredentials;
    if (options.tls === true) creds = grpc.credentials.createSsl();
    else if (options.tls === undefined || options.tls === false) creds = grpc.credentials.createInsecure();
    else creds = options.tls;
    const { Authorizer, Health, Reflection } = loadStubs();
    this.#authorizer = new Authorizer(address, creds, {
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      ...options.channelOptions,
    });
    // Health and reflection ride on the Authorizer's channel.
    const shared = { channelOverride: this.#authorizer.getChannel() };
    this.#health = new Health(address, creds, shared);
    this.#reflection = new Reflection(address, creds, shared);
  }

  /**
   * May `principal` perform `action` on each of `ids`? One BatchCheck;
   * the answer is read from the response's bitmask over request positions
   * and its denials.
   */
  async batchCheck(request: BatchCheckRequest): Promise<Answer> {
    this.#ensureOpen();
    const { ids } = request;
    if (!Array.isArray(ids)) throw invalidArgument('ids must be an array of record UUIDs');
    const packed = request.packed ?? true;
    const wire: Record<string, unknown> = {
      tenant: request.tenant,
      principal: parsePrincipal(request.principal),
      object: request.object ?? 'contacts',
      action: request.action,
      context: context(request.context),
      min_revision: uint64('minRevision', request.minRevision),
      // Denials as two byte arrays, not one message each: a fifth of a bulk
      // action's positions are denied.
      packed_denials: true,
    };
    const handles = this.#handles;
    const key = `${request.tenant}\0${request.object ?? 'contacts'}`;
    let resp: RawBatchCheckResponse | undefined;
    const cached = handles?.packed(key, ids);
    if (handles !== undefined && cached !== undefined) {
      try {
        resp = await this.#unary<RawBatchCheckResponse>(this.#authorizer, 'BatchCheck', {
          ...wire,
          record_handles: cached,
        });
      } catch (err) {
        if (!(err instanceof PermdError && err.code === 'FAILED_PRECONDITION' && err.details.startsWith(STALE_HANDLES))) {
          throw err;
        }
        // This permd did not give them out (it restarted, reloaded the
        // tenant, or is another permd): the ids again, for new handles.
        handles.forget(key);
      }
    }
    if (resp === undefined) {
      if (packed) {
        wire.packed_record_ids = { uuids: packUuids(ids) };
      } else {
        ids.forEach((id, i) => {
          if (typeof id !== 'string') throw invalidArgument(`ids[${i}] is not a string`);
        });
        wire.record_ids = { ids: [...ids] };
      }
      wire.return_handles = handles !== undefined;
      resp = await this.#unary<RawBatchCheckResponse>(this.#authorizer, 'BatchCheck', wire);
      if (handles !== undefined && resp.handles) handles.learn(key, ids, resp.handles);
    }

    const mask = resp.allowed;
    const allowed = new Array<boolean>(ids.length);
    const allowedIds: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const bit = (((mask[i >> 3] ?? 0) >> (i & 7)) & 1) === 1;
      allowed[i] = bit;
      if (bit) allowedIds.push(ids[i] as string);
    }
    const reasons: Record<string, ReasonName> = {};
    const countsByReason: Partial<Record<ReasonName, number>> = {};
    const denials: Denial[] = [];
    const deny = (position: number, reason: ReasonName): void => {
      const id = ids[position] ?? '';
      denials.push({ position, id, reason });
      reasons[id] = reason;
      countsByReason[reason] = (countsByReason[reason] ?? 0) + 1;
    };
    const packedDenials = resp.packed_denials;
    if (packedDenials) {
      const { positions, reasons: numbers } = packedDenials;
      if (positions.length !== 4 * numbers.length) {
        throw new PermdError(
          'INTERNAL',
          `packed_denials: ${positions.length} position bytes for ${numbers.length} reasons`,
        );
      }
      const names = loadStubs().reasonNames;
      for (let k = 0; k < numbers.length; k++) {
        const n = numbers[k] as number;
        deny(positions.readUInt32LE(4 * k), (names.get(n) ?? `UNKNOWN_REASON_${n}`) as ReasonName);
      }
    } else {
      // A server older than packed_denials: one message per denial.
      for (const d of resp.denials) deny(d.position, enumName<ReasonName>(d.reason, 'UNKNOWN_REASON_'));
    }
    const fieldMask: Record<string, FieldLevelName> = {};
    for (const [field, level] of Object.entries(resp.field_mask?.fields ?? {})) {
      fieldMask[field] = enumName<FieldLevelName>(level, 'UNKNOWN_LEVEL_');
    }
    return {
      allowedIds,
      allowed,
      allowedCount: resp.allowed_count,
      reasons,
      denials,
      countsByReason,
      fieldMask,
      revision: BigInt(resp.revision),
    };
  }

  /**
   * The standard gRPC health check of `service` (default
   * `permd.v1.Authorizer`, which follows permd's readiness; `""` is the
   * server as a whole).
   */
  async health(service: string = AUTHORIZER_SERVICE): Promise<HealthStatus> {
    const resp = await this.#unary<{ status: string | number }>(this.#health, 'Check', { service });
    return enumName<HealthStatus>(resp.status, 'UNKNOWN_STATUS_');
  }

  /** The services the server lists through reflection (v1alpha), sorted. */
  listServices(): Promise<string[]> {
    return new Promise((resolve, reject) => {
      this.#ensureOpen();
      const names: string[] = [];
      const method = (this.#reflection as any).ServerReflectionInfo as (
        metadata: grpc.Metadata,
        options: grpc.CallOptions,
      ) => grpc.ClientDuplexStream<object, RawReflectionResponse>;
      const call = method.call(this.#reflection, this.#metadata(), { deadline: this.#deadline() });
      let failed = false;
      call.on('data', (resp: RawReflectionResponse) => {
        if (resp.message_response === 'list_services_response') {
          for (const s of resp.list_services_response?.service ?? []) names.push(s.name);
        } else if (resp.message_response === 'error_response' && !failed) {
          failed = true;
          const e = resp.error_response;
          reject(new PermdError(statusName(e?.error_code ?? 2), e?.error_message ?? '', { grpcCode: e?.error_code ?? 2 }));
          call.cancel();
        }
      });
      call.on('error', (err) => {
        if (!failed) {
          failed = true;
          reject(fromGrpcError(err));
        }
      });
      call.on('end', () => {
        if (!failed) resolve(names.sort());
      });
      call.write({ host: '', list_services: '' });
      call.end();
    });
  }

  /**
   * Resolves once the channel is connected; rejects with PermdError
   * `UNAVAILABLE` if it is not within `timeoutMs`.
   */
  waitForReady(timeoutMs: number = this.timeoutMs): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#ensureOpen();
      this.#authorizer.waitForReady(Date.now() + timeoutMs, (err) => {
        if (err) {
          reject(new PermdError('UNAVAILABLE', `permd not reachable at ${this.address}: ${err.message}`, { cause: err }));
        } else {
          resolve();
        }
      });
    });
  }

  /** How many record handles the client holds for `object` of `tenant` (0 without `recordHandles`). */
  cachedHandles(tenant: string, object: string = 'contacts'): number {
    return this.#handles?.size(`${tenant}\0${object}`) ?? 0;
  }

  /** Closes the channel; calls after this fail. */
  close(): void {
    this.#closed = true;
    this.#authorizer.close();
  }

  #ensureOpen(): void {
    if (this.#closed) throw new PermdError('FAILED_PRECONDITION', 'this client is closed');
  }

  #deadline(): Date {
    return new Date(Date.now() + this.timeoutMs);
  }

  #metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.#token !== undefined) md.set('authorization', `Bearer ${this.#token}`);
    return md;
  }

  #unary<T>(client: grpc.Client, name: string, request: object): Promise<T> {
    return new Promise((resolve, reject) => {
      this.#ensureOpen();
      const method = (client as unknown as Record<string, UnaryMethod<T>>)[name];
      if (method === undefined) {
        reject(new PermdError('UNIMPLEMENTED', `${name} is not in the loaded protos`));
        return;
      }
      try {
        method.call(client, request, this.#metadata(), { deadline: this.#deadline() }, (err, value) => {
          if (err) reject(fromGrpcError(err));
          else resolve(value as T);
        });
      } catch (err) {
        // grpc-js serializes synchronously: a request the protos cannot encode.
        reject(err instanceof PermdError ? err : invalidArgument(err instanceof Error ? err.message : String(err)));
      }
    });
  }
}
