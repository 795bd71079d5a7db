// Type-checked (not run) by ci.sh against the installed package: the
// CommonJS entry's declarations.
import permd = require('@permd/client');
import grpc = require('@grpc/grpc-js');

export async function cjs(addr: string): Promise<string[]> {
  const client = new permd.Client(addr, { tls: grpc.credentials.createSsl() });
  const answer: permd.Answer = await client.batchCheck({
    tenant: 'demo',
    principal: { kind: 'INTEGRATION', id: 'k' },
    action: 'bulk_send_email',
    ids: [],
    packed: false,
    object: 'contacts',
    context: { subscriptionList: 'newsletter', channel: 'EMAIL' },
  });
  const d: permd.Denial | undefined = answer.denials[0];
  void d;
  return answer.allowedIds;
}
