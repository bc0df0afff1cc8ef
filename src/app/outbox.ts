import type { Tx } from '../adapters/db/index.js';
import { newId } from '../domain/ids.js';

/**
 * Notices waiting to be sent (credential changes, invitations, password resets). Written in
 * the same transaction as the change they announce; a mailer (a later feature) drains the
 * table and sets sent_at. Payloads hold identifiers and facts, plus, for invitations and
 * resets only, the single-use link token the email must carry.
 */
export type NoticeKind =
  | 'credential.password_changed'
  | 'credential.password_reset'
  | 'credential.mfa_changed'
  | 'credential.passkey_added'
  | 'credential.passkey_removed'
  | 'credential.recovery_codes_regenerated'
  | 'credential.api_key_created'
  | 'password_reset.requested'
  | 'invitation.created'
  | 'break_glass.granted';

export async function enqueueNotice(
  tx: Tx,
  notice: {
    kind: NoticeKind;
    userId: string | null;
    orgId: string | null;
    payload?: Record<string, unknown>;
  },
  now: Date,
): Promise<string> {
  const id = newId('outbox');
  await tx
    .insertInto('outbox')
    .values({
      id,
      org_id: notice.orgId,
      user_id: notice.userId,
      kind: notice.kind,
      payload: JSON.stringify(notice.payload ?? {}),
      created_at: now,
    })
    .execute();
  return id;
}
