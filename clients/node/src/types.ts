import type { ChannelCredentials, ChannelOptions } from '@grpc/grpc-js';

/** Why a record was denied (permd.v1.Reason), by name. */
export type ReasonName =
  | 'UNKNOWN_RECORD'
  | 'OBJECT_NOT_VISIBLE'
  | 'ARCHIVED'
  | 'NOT_ARCHIVED'
  | 'NO_RECORD_ACCESS'
  | 'ACTION_NOT_PERMITTED'
  | 'FIELD_RESTRICTED'
  | 'NO_EMAIL'
  | 'SUPPRESSED'
  | 'UNSUBSCRIBED'
  | 'OPTED_OUT_OF_LIST'
  | 'EMAIL_NOT_CONFIGURED'
  | 'SENDER_BLOCKED'
  | 'NO_MOBILE'
  | 'SMS_OPTED_OUT'
  | 'SMS_NOT_CONFIGURED'
  | 'SYSTEM_MANAGED'
  | 'SINGLE_RECORD_ONLY'
  /** A reason newer than the protos this package ships, by number. */
  | `UNKNOWN_REASON_${number}`;

/** A field's level in a field mask (permd.v1.FieldLevel): NONE < VIEW < EDIT. */
export type FieldLevelName = 'NONE' | 'VIEW' | 'EDIT' | `UNKNOWN_LEVEL_${number}`;

export type PrincipalKind = 'USER' | 'INTEGRATION' | 'AUTOMATION';

/** Who asks (permd.v1.Principal). */
export interface Principal {
  kind: PrincipalKind;
  id: string;
}

/** What the Contact state gates and field rules need to know (permd.v1.ActionContext). */
export interface ActionContext {
  /** For `send_single_message`: `EMAIL` or `TEXT`. */
  channel?: 'EMAIL' | 'TEXT';
  /** Transactional mail may reach `unsubscribed_all` Contacts. Default false (marketing). */
  transactional?: boolean;
  /** The subscription list the message is sent on. */
  subscriptionList?: string;
  /** For `edit` and `bulk_change_field_values`: the fields to be changed. */
  fields?: readonly string[];
  /** For `subscription_lists` and `bulk_manage_subscription`, e.g. `opted_in`. */
  targetEmailStatus?: string;
}

/** A revision: uint64, as a bigint, a safe integer or a decimal string. */
export type RevisionLike = bigint | number | string;

export interface BatchCheckRequest {
  tenant: string;
  /**
   * `"user:carol"`, `"integration:ID"`, `"automation:ID"`, a bare user id
   * (`"carol"`), or a `{kind, id}` object.
   */
  principal: string | Principal;
  /** e.g. `view`, `edit`, `bulk_send_email`. */
  action: string;
  /** Record UUIDs; at most the server's `max_batch` (default 100,000). */
  ids: readonly string[];
  /** Send 16-byte packed ids (default true); false sends the strings. */
  packed?: boolean;
  /** Read-your-writes: refuse to answer at an older revision. */
  minRevision?: RevisionLike;
  /** The object the records belong to (default `contacts`). */
  object?: string;
  context?: ActionContext;
}

/** One denied request position. */
export interface Denial {
  /** Position in the request's `ids`. */
  position: number;
  /** `ids[position]` as it was passed. */
  id: string;
  reason: ReasonName;
}

/** The answer of one BatchCheck. */
export interface Answer {
  /** The allowed ids, in request order, as they were passed. */
  allowedIds: string[];
  /** Per request position: allowed or not (the response's bitmask). */
  allowed: boolean[];
  /** The number of allowed positions, as the server counted them. */
  allowedCount: number;
  /** Denied id → the first reason that applies. */
  reasons: Record<string, ReasonName>;
  /** Every denied position in request order (ids repeated in a request each have one). */
  denials: Denial[];
  /** Denied positions per reason; only reasons that occur are present. */
  countsByReason: Partial<Record<ReasonName, number>>;
  /** Field → level on the object; applies to the allowed ids only. */
  fieldMask: Record<string, FieldLevelName>;
  /** The revision of the data the answer was computed at (uint64). */
  revision: bigint;
}

export type HealthStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

export interface ClientOptions {
  /**
   * false or absent: plaintext (a loopback sidecar); true: TLS with the
   * system's roots; or any grpc-js ChannelCredentials (e.g.
   * `credentials.createSsl(ca, key, cert)` for mutual TLS).
   */
  tls?: boolean | ChannelCredentials;
  /** Sent as `authorization: Bearer <token>` on every call. */
  token?: string;
  /** Deadline of each call in milliseconds (default 30,000). */
  timeoutMs?: number;
  /** Extra grpc-js channel options (message size limits default to 64 MiB). */
  channelOptions?: ChannelOptions;
  /**
   * Remember the handle permd returns for each id (per tenant and object)
   * and, once every id of a batch has one, send the handles (4 bytes each)
   * instead of the ids: permd skips finding each id, most of its CPU per
   * record on a large object. Handles are valid only for the permd that
   * gave them: when it refuses them (a restart, a reload of the tenant,
   * another permd behind the address), the client forgets them and sends
   * the ids again, so answers are the same either way. Use it against one
   * permd (the pod's sidecar), not a load balancer in front of several.
   */
  recordHandles?: boolean;
  /** At most this many cached handles per object (default 2,000,000); past it the cache starts again. */
  maxCachedHandles?: number;
}
