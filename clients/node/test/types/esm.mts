// Type-checked (not run) by ci.sh against the installed package: the ESM
// entry's declarations.
import { Client, PermdError, type Answer, type ReasonName } from '@permd/client';

export async function esm(addr: string, ids: string[]): Promise<number> {
  const client = new Client(addr, { tls: false, token: 't', timeoutMs: 1_000 });
  try {
    const a: Answer = await client.batchCheck({ tenant: 'demo', principal: 'user:carol', action: 'view', ids, minRevision: 1n });
    const revision: bigint = a.revision;
    const first: ReasonName | undefined = Object.values(a.reasons)[0];
    const noEmail: number = a.countsByReason.NO_EMAIL ?? 0;
    const level: string | undefined = a.fieldMask.email;
    const status: 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN' = await client.health();
    void [revision, first, level, status];
    return a.allowedIds.length + noEmail;
  } catch (e) {
    if (e instanceof PermdError) return e.code.length + e.details.length;
    throw e;
  } finally {
    client.close();
  }
}
