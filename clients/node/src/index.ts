/**
 * @permd/client — a Node.js client of permd, the gRPC authorization sidecar.
 *
 * CommonJS build; the ESM entry (dist/esm/index.mjs) re-exports these same
 * bindings, so `import` and `require` share one class identity.
 */
export { Client, parsePrincipal, PROTO_DIR } from './client';
export { PermdError, statusName } from './errors';
export { packUuids, unpackUuids } from './ids';
export type {
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
