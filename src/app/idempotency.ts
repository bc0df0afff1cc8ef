import { createHash } from 'node:crypto';
import { type Db, inOrg } from '../adapters/db/index.js';
import { DomainError } from '../domain/errors.js';
import type { Clock, FieldCipher } from './ports.js';

/** How long a key is remembered (Stripe keeps them 24 hours, too). */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
const WAIT_MS = 10_000;
const POLL_MS = 50;

export interface IdempotencyDeps {
  db: Db;
  cipher: FieldCipher;
  clock: Clock;
}

export type BeginResult = { kind: 'proceed' } | { kind: 'replay'; status: number; body: string };

/** The fingerprint of a request: same key + different fingerprint is a misuse (409). */
export function requestFingerprint(method: string, path: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method} ${path}\n${JSON.stringify(body ?? null)}`)
    .digest('hex');
}

const field = (key: string) => ({ table: 'idempotency_keys', column: 'response_enc', rowId: key });

/**
 * Claims a key for one request. The first caller proceeds; a repeat of a finished request gets
 * its stored response; a repeat while the first still runs waits for it, then gets 409; the
 * same key with another body or from another caller is 409 `idempotency_key_reused`.
 */
export async function beginIdempotent(
  deps: IdempotencyDeps,
  orgId: string,
  actorId: string,
  key: string,
  fingerprint: string,
): Promise<BeginResult> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const outcome = await inOrg(deps.db, orgId, async (tx) => {
      const expired = new Date(deps.clock.now().getTime() - IDEMPOTENCY_TTL_MS);
      await tx
        .deleteFrom('idempotency_keys')
        .where('key', '=', key)
        .where('created_at', '<', expired)
        .execute();
      const inserted = await tx
        .insertInto('idempotency_keys')
        .values({
          org_id: orgId,
          key,
          actor_id: actorId,
          request_hash: fingerprint,
          status: 'in_progress',
          created_at: deps.clock.now(),
        })
        .onConflict((oc) => oc.columns(['org_id', 'key']).doNothing())
        .returning('key')
        .executeTakeFirst();
      if (inserted) return { kind: 'proceed' } as const;
      const row = await tx
        .selectFrom('idempotency_keys')
        .selectAll()
        .where('key', '=', key)
        .executeTakeFirstOrThrow();
      if (row.actor_id !== actorId || row.request_hash !== fingerprint) {
        throw new DomainError(
          'idempotency_key_reused',
          'This Idempotency-Key was already used with a different request.',
          'Idempotency-Key',
        );
      }
      if (row.status === 'completed' && row.response_enc && row.response_status !== null) {
        const body = await deps.cipher.decrypt(tx, { orgId }, field(key), row.response_enc);
        return { kind: 'replay', status: row.response_status, body } as const;
      }
      return { kind: 'wait' } as const;
    });
    if (outcome.kind !== 'wait') return outcome;
    if (Date.now() > deadline) {
      throw new DomainError(
        'conflict',
        'A request with this Idempotency-Key is still in progress.',
        'Idempotency-Key',
      );
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Stores the response (encrypted: it may carry PII) so repeats replay it. */
export async function completeIdempotent(
  deps: IdempotencyDeps,
  orgId: string,
  key: string,
  status: number,
  body: string,
): Promise<void> {
  await inOrg(deps.db, orgId, async (tx) => {
    const response_enc = await deps.cipher.encrypt(tx, { orgId }, field(key), body);
    await tx
      .updateTable('idempotency_keys')
      .set({ status: 'completed', response_status: status, response_enc, completed_at: deps.clock.now() })
      .where('key', '=', key)
      .where('status', '=', 'in_progress')
      .execute();
  });
}

/** Forgets a key whose request failed on our side (5xx), so the client may retry it. */
export async function abandonIdempotent(deps: IdempotencyDeps, orgId: string, key: string): Promise<void> {
  await inOrg(deps.db, orgId, (tx) =>
    tx.deleteFrom('idempotency_keys').where('key', '=', key).where('status', '=', 'in_progress').execute(),
  );
}
