import {
  DATA_CATEGORIES,
  type DataCategory,
  type FieldPrivacy,
  registeredTables,
} from '../adapters/crypto/encrypted-columns.js';
import { OTHER_ENCRYPTED_COLUMNS } from '../adapters/crypto/encrypted-tables.js';
import { type Db, inOrg } from '../adapters/db/index.js';
import { authorize } from './authz.js';
import type { Ctx } from './context.js';
import { RETENTION_DEFAULTS } from './retention.js';

/** One encrypted field in the records of processing. */
export interface ProcessingField extends FieldPrivacy {
  table: string;
  column: string;
  blind_index: string | null;
}

/** Every encrypted field of the schema with its classification; unclassified ones are listed apart. */
export function classifiedFields(): { fields: ProcessingField[]; unclassified: string[] } {
  const fields: ProcessingField[] = [];
  const unclassified: string[] = [];
  for (const t of registeredTables()) {
    for (const c of t.columns) {
      const p = t.spec.privacy?.[c.field];
      if (!p) {
        unclassified.push(`${t.spec.table}.${c.column}`);
        continue;
      }
      fields.push({ table: t.spec.table, column: c.column, blind_index: c.blindIndex?.column ?? null, ...p });
    }
  }
  for (const o of OTHER_ENCRYPTED_COLUMNS) fields.push({ ...o, blind_index: null });
  return { fields, unclassified };
}

export interface ProcessingRecords {
  object: 'processing_records';
  controller: { org: string; name: string };
  generated_at: string;
  categories: { category: DataCategory; fields: ProcessingField[] }[];
  retention_policies: { setting: string; default: number }[];
  security_measures: string[];
}

/** GDPR Art. 30 records of processing activities, generated from the schema's data classification. */
export async function getProcessingRecords(db: Db, ctx: Ctx, now: Date): Promise<ProcessingRecords> {
  return inOrg(db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'privacy:read');
    const org = await tx.selectFrom('orgs').select(['id', 'name']).executeTakeFirstOrThrow();
    const { fields } = classifiedFields();
    return {
      object: 'processing_records',
      controller: { org: org.id, name: org.name },
      generated_at: now.toISOString(),
      categories: DATA_CATEGORIES.map((category) => ({
        category,
        fields: fields.filter((f) => f.category === category),
      })).filter((g) => g.fields.length > 0),
      retention_policies: [
        { setting: 'privacy.retention_years', default: 10 },
        ...Object.entries(RETENTION_DEFAULTS).map(([setting, d]) => ({ setting, default: d.value })),
      ],
      security_measures: [
        'field-level AES-256-GCM envelope encryption; per-customer data keys (erasure by crypto-shredding)',
        'keyed blind indexes (HMAC-SHA256) for exact-match search',
        'deny-by-default role and record-level access control; PII masked without customers:read_pii',
        'tamper-evident audit trail (hash chain, Ed25519-signed checkpoints); every PII read audited',
        'argon2id passwords, TOTP and passkeys, step-up for sensitive actions, session timeouts',
        'TLS in transit; encrypted, authenticated backups',
      ],
    };
  });
}
