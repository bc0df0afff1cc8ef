import type { CipherScope, FieldCipher } from '../../app/ports.js';
import type { Tx } from '../db/tx.js';

/**
 * The typed helper repositories use for encrypted columns. A table declares its encrypted
 * fields once; adding one is one line in `fields`:
 *
 *   export const contactCrypto = encryptedTable({
 *     table: 'org_contacts', idColumn: 'id', orgColumn: 'org_id',
 *     fields: {
 *       name: 'name_enc',
 *       email: { column: 'email_enc', blindIndex: { column: 'email_bidx', purpose: 'email' } },
 *     },
 *   });
 *   const cols = await contactCrypto.seal(cipher, tx, scope, id, { name, email }); // → name_enc, email_enc, email_bidx
 *   const plain = await contactCrypto.open(cipher, tx, scope, id, row);            // → { name, email }
 *
 * Every declared table is registered, so `billvault keys reencrypt` finds its ciphertexts.
 * Plaintext exists only in memory: what reaches SQL is the ciphertext and the blind index.
 */
export type FieldSpec =
  | string
  | {
      column: string;
      blindIndex?: { column: string; purpose: string };
      /** Overrides the table's subject for this column (null: under the org's own data key). */
      subject?: SubjectSpec | null;
    };

/** Whose data key a column is under (a customer's, a user's, or an org retention year's), named by a column of the row. */
export interface SubjectSpec {
  type: 'customer' | 'user' | 'retention';
  column: string;
}

/** GDPR Art. 30 data categories of encrypted fields (records of processing activities). */
export const DATA_CATEGORIES = [
  'identity',
  'contact',
  'financial',
  'tax',
  'authentication',
  'free_text',
  'commercial',
] as const;
export type DataCategory = (typeof DATA_CATEGORIES)[number];

/** What an encrypted field holds and why (Art. 30(1)(b)–(f)); every registered field declares it. */
export interface FieldPrivacy {
  category: DataCategory;
  /** Whose data it is. */
  subjects: 'customers' | 'customer contacts' | 'users' | 'org contacts';
  purpose: string;
  /** Art. 6(1) basis. */
  legal_basis: 'contract' | 'legal_obligation' | 'legitimate_interest' | 'consent';
  retention: string;
}

export interface EncryptedTableSpec<F extends string> {
  table: string;
  /** The row id bound into every ciphertext's AAD. */
  idColumn: string;
  /** The org column (null for platform tables such as users). */
  orgColumn: string | null;
  /** When each row has its own subject key (a customer's): the subject type and the column holding its id. */
  subject?: SubjectSpec;
  fields: Record<F, FieldSpec>;
  /** The data category, purpose, legal basis and retention of every field (a test requires it). */
  privacy?: Partial<Record<F, FieldPrivacy>>;
}

export interface EncryptedTable<F extends string> {
  readonly spec: EncryptedTableSpec<F>;
  /** The encrypted columns (and their blind-index columns), as [field, column, blindIndex?]. */
  readonly columns: readonly {
    field: F;
    column: string;
    blindIndex?: { column: string; purpose: string };
    /** The column's subject (the table's unless the field overrides it); undefined: the org key. */
    subject?: SubjectSpec;
  }[];
  /** Encrypts the given fields into their columns; null stays null (and so does its blind index). */
  seal(
    cipher: FieldCipher,
    tx: Tx,
    scope: CipherScope,
    rowId: string,
    values: Partial<Record<F, string | null>>,
  ): Promise<Record<string, string | null>>;
  /** Decrypts the fields present in a row. */
  open(
    cipher: FieldCipher,
    tx: Tx,
    scope: CipherScope,
    rowId: string,
    row: Readonly<Record<string, unknown>>,
  ): Promise<Record<F, string | null>>;
  /** The blind index to look a value up by (exact match on the field's index column). */
  index(cipher: FieldCipher, tx: Tx, orgId: string | null, field: F, value: string): Promise<string>;
}

const registry: EncryptedTable<string>[] = [];

/** Every encrypted table declared so far (for re-encryption and reference checks). */
export function registeredTables(): readonly EncryptedTable<string>[] {
  return registry;
}

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

/** Declares the encrypted fields of a table (and registers them). */
export function encryptedTable<F extends string>(spec: EncryptedTableSpec<F>): EncryptedTable<F> {
  const columns = (Object.entries(spec.fields) as [F, FieldSpec][]).map(([field, s]) => {
    if (typeof s === 'string') return { field, column: s, subject: spec.subject };
    const subject = s.subject === undefined ? spec.subject : (s.subject ?? undefined);
    return { field, column: s.column, blindIndex: s.blindIndex, subject };
  });
  for (const name of [
    spec.table,
    spec.idColumn,
    spec.orgColumn ?? 'x',
    spec.subject?.column ?? 'x',
    ...columns.flatMap((c) => [c.column, c.blindIndex?.column ?? 'x', c.subject?.column ?? 'x']),
  ]) {
    if (!IDENT.test(name)) throw new Error(`encryptedTable: ${name} is not a plain SQL identifier`);
  }
  const ref = (column: string, rowId: string) => ({ table: spec.table, column, rowId });
  const table: EncryptedTable<F> = {
    spec,
    columns,
    async seal(cipher, tx, scope, rowId, values) {
      const out: Record<string, string | null> = {};
      for (const c of columns) {
        if (!(c.field in values)) continue;
        const v = values[c.field];
        if (v === undefined) continue;
        out[c.column] = v === null ? null : await cipher.encrypt(tx, scope, ref(c.column, rowId), v);
        if (c.blindIndex) {
          out[c.blindIndex.column] =
            v === null ? null : await cipher.blindIndex(tx, scope.orgId, c.blindIndex.purpose, v);
        }
      }
      return out;
    },
    async open(cipher, tx, scope, rowId, row) {
      const out = {} as Record<F, string | null>;
      for (const c of columns) {
        const v = row[c.column];
        out[c.field] =
          typeof v === 'string' ? await cipher.decrypt(tx, scope, ref(c.column, rowId), v) : null;
      }
      return out;
    },
    async index(cipher, tx, orgId, field, value) {
      const c = columns.find((x) => x.field === field);
      if (!c?.blindIndex) throw new Error(`${spec.table}.${field} has no blind index`);
      return cipher.blindIndex(tx, orgId, c.blindIndex.purpose, value);
    },
  };
  const existing = registry.findIndex((t) => t.spec.table === spec.table);
  if (existing >= 0) registry.splice(existing, 1);
  registry.push(table as unknown as EncryptedTable<string>);
  return table;
}
