import { invalidArgument } from './errors';

const HYPHENATED = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const SIMPLE = /^[0-9a-fA-F]{32}$/;
const URN_PREFIX = 'urn:uuid:';

/**
 * The 32 hex digits of a UUID in any textual form permd reads (hyphenated,
 * simple, braced `{…}`, `urn:uuid:…`; either case), or null.
 */
export function uuidHex(id: string): string | null {
  let s = id;
  if (s.length === 45 && s.slice(0, URN_PREFIX.length).toLowerCase() === URN_PREFIX) {
    s = s.slice(URN_PREFIX.length);
  } else if (s.length === 38 && s.startsWith('{') && s.endsWith('}')) {
    s = s.slice(1, 37);
  }
  if (s.length === 36 && HYPHENATED.test(s)) {
    return s.slice(0, 8) + s.slice(9, 13) + s.slice(14, 18) + s.slice(19, 23) + s.slice(24);
  }
  if (s === id && SIMPLE.test(s)) return s;
  return null;
}

/**
 * Packs UUIDs as permd's PackedIds: 16 bytes per id, big-endian (RFC 4122
 * byte order), concatenated. An id that is not a UUID is refused with a
 * PermdError `INVALID_ARGUMENT` naming its position.
 */
export function packUuids(ids: readonly string[], field = 'ids'): Buffer {
  const out = Buffer.allocUnsafe(ids.length * 16);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    const hex = typeof id === 'string' ? uuidHex(id) : null;
    if (hex === null) {
      throw invalidArgument(`${field}[${i}]: ${quote(id)} is not a UUID (packed ids must be UUIDs; pass packed: false to send strings)`);
    }
    out.write(hex, i * 16, 16, 'hex');
  }
  return out;
}

/** Unpacks PackedIds into lower-case hyphenated UUIDs. */
export function unpackUuids(packed: Uint8Array): string[] {
  if (packed.length % 16 !== 0) {
    throw invalidArgument(`${packed.length} bytes is not a whole number of 16-byte UUIDs`);
  }
  const buf = Buffer.from(packed.buffer, packed.byteOffset, packed.length);
  const ids = new Array<string>(packed.length / 16);
  for (let i = 0; i < ids.length; i++) {
    const h = buf.toString('hex', i * 16, i * 16 + 16);
    ids[i] = `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
  return ids;
}

function quote(value: unknown): string {
  if (typeof value !== 'string') return `a ${value === null ? 'null' : typeof value}`;
  const shown = value.length > 100 ? `${value.slice(0, 100)}…` : value;
  return `'${shown}'`;
}
