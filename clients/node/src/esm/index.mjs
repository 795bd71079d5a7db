// The ESM entry of @permd/client: the CommonJS build's bindings, re-exported,
// so that `import` and `require` share one Client and one PermdError class.
import cjs from '../cjs/index.js';

export const {
  Client,
  PermdError,
  PROTO_DIR,
  packUuids,
  parsePrincipal,
  statusName,
  unpackUuids,
} = cjs;
