import { status as grpcStatus } from '@grpc/grpc-js';
import type { Metadata } from '@grpc/grpc-js';

/** The name of a gRPC status code, e.g. 5 → `NOT_FOUND`. */
export function statusName(code: number): string {
  const name = (grpcStatus as unknown as Record<number, string | undefined>)[code];
  return name ?? `STATUS_${code}`;
}

/**
 * A refused or failed call: `code` is the gRPC status name (`NOT_FOUND`,
 * `INVALID_ARGUMENT`, `UNAVAILABLE`, …) and `details` the server's message.
 * Arguments the client rejects before sending (an id that cannot be packed,
 * an unknown principal kind) are reported the same way, as
 * `INVALID_ARGUMENT`.
 */
export class PermdError extends Error {
  /** The gRPC status name, e.g. `NOT_FOUND`. */
  readonly code: string;
  /** The gRPC status number, e.g. 5. */
  readonly grpcCode: number;
  /** The status message: what the server (or this client) said went wrong. */
  readonly details: string;
  /** Trailing metadata of the failed call, when there was a call. */
  readonly metadata: Metadata | undefined;

  constructor(code: string, details: string, options: { grpcCode?: number; metadata?: Metadata; cause?: unknown } = {}) {
    super(`${code}: ${details}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PermdError';
    this.code = code;
    this.grpcCode = options.grpcCode ?? (grpcStatus as unknown as Record<string, number>)[code] ?? grpcStatus.UNKNOWN;
    this.details = details;
    this.metadata = options.metadata;
  }
}

interface ServiceErrorLike {
  code?: unknown;
  details?: unknown;
  message?: unknown;
  metadata?: Metadata;
}

/** A grpc-js call error as a PermdError; anything else is returned as is. */
export function fromGrpcError(err: unknown): unknown {
  if (err instanceof PermdError) return err;
  const e = err as ServiceErrorLike | null;
  if (e === null || typeof e !== 'object' || typeof e.code !== 'number') return err;
  const details = typeof e.details === 'string' ? e.details : String(e.message ?? '');
  return new PermdError(statusName(e.code), details, {
    grpcCode: e.code,
    ...(e.metadata === undefined ? {} : { metadata: e.metadata }),
    cause: err,
  });
}

/** A client-side refusal of an argument, shaped like the server's. */
export function invalidArgument(details: string): PermdError {
  return new PermdError('INVALID_ARGUMENT', details, { grpcCode: grpcStatus.INVALID_ARGUMENT });
}
