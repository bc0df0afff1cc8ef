import { type Selectable, sql } from 'kysely';
import { customersCrypto } from '../adapters/crypto/encrypted-tables.js';
import { inOrg, type Tx } from '../adapters/db/index.js';
import type { CustomersTable } from '../adapters/db/schema-billing.js';
import { type CsvValue, csvTable } from '../domain/csv.js';
import { DomainError } from '../domain/errors.js';
import { maskName, maskTail, maskText } from '../domain/masking.js';
import { can } from '../domain/permissions.js';
import { recordAudit } from './audit.js';
import { authorize } from './authz.js';
import { type Ctx, systemCtx } from './context.js';
import { type BillingDeps, customerResource } from './customers.js';
import { linesOf } from './invoices.js';
import { shredSubjectKeys } from './keys.js';
import type { CipherScope } from './ports.js';
import { decryptOrNull } from './shredded.js';

/**
 * Privacy tooling (GDPR Art. 15/17/18/20, DESIGN.md §5): per-customer export, erasure by
 * crypto-shredding with restricted retention of the legally required buyer details, and legal
 * holds. Every call authorises, runs in one transaction and is audited in it; no audit event
 * carries PII.
 */

/** Where erasures are remembered outside the database, so a restored older backup cannot bring a customer back. */
export interface ErasureLog {
  /** Appends (and syncs) one tombstone: ids only, never PII. */
  record(t: ErasureTombstone): Promise<void>;
  list(): Promise<ErasureTombstone[]>;
}

export interface ErasureTombstone {
  org_id: string;
  customer_id: string;
  erased_at: string;
}

export interface PrivacyDeps extends BillingDeps {
  erasureLog?: ErasureLog;
}

/** GDPR Art. 17(1) grounds (plus the others): the erasure's reason, audited as a code (never free text). */
export const ERASURE_REASONS = [
  'data_subject_request',
  'consent_withdrawn',
  'no_longer_necessary',
  'objection',
  'unlawful_processing',
  'legal_obligation',
  'other',
] as const;
export type ErasureReason = (typeof ERASURE_REASONS)[number];

/** Default years the buyer details of issued invoices are kept (org setting `privacy.retention_years`). */
export const DEFAULT_RETENTION_YEARS = 10;

type CustomerRow = Selectable<CustomersTable>;

const customerScope = (orgId: string, id: string): CipherScope => ({
  orgId,
  subject: { type: 'customer', id },
});
const retentionScope = (orgId: string, key: string): CipherScope => ({
  orgId,
  subject: { type: 'retention', id: key },
});

async function intSetting(tx: Tx, key: string, fallback: number, min: number, max: number): Promise<number> {
  const row = await tx.selectFrom('org_settings').select('value').where('key', '=', key).executeTakeFirst();
  const v = row?.value;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : Number.NaN;
  return Number.isInteger(n) && n >= min && n <= max ? n : fallback;
}

/** The org's retention period for issued documents' buyer details, in years (1–30, default 10). */
export function retentionYears(tx: Tx): Promise<number> {
  return intSetting(tx, 'privacy.retention_years', DEFAULT_RETENTION_YEARS, 1, 30);
}

/** issue date + N years (29 Feb → 28 Feb), as YYYY-MM-DD. */
export function retainUntil(issueDate: string, years: number): string {
  const [y, m, d] = issueDate.split('-').map(Number) as [number, number, number];
  const ty = y + years;
  const last = new Date(Date.UTC(ty, m, 0)).getUTCDate();
  return `${ty}-${String(m).padStart(2, '0')}-${String(Math.min(d, last)).padStart(2, '0')}`;
}

async function loadCustomer(tx: Tx, ctx: Ctx, id: string, permission: Parameters<typeof authorize>[2]) {
  // Locked for writes (erasure, hold) so that two of them on one customer run one after the other.
  let q = tx.selectFrom('customers').selectAll().where('id', '=', id);
  if (permission !== 'gdpr:export') q = q.forUpdate();
  const row = await q.executeTakeFirst();
  if (!row) throw new DomainError('not_found', 'No such customer.', 'id');
  await authorize(tx, ctx, permission, customerResource(row));
  return row;
}

// ---------------------------------------------------------------------------------------------
// Export (Art. 15 access, Art. 20 portability)

const n = (v: bigint | number | null): number | null => (v === null ? null : Number(v));

export interface CustomerExport {
  object: 'customer_export';
  format_version: 1;
  generated_at: string;
  customer: Record<string, unknown>;
  credit_balance: { currency: string; amount: number }[];
  invoices: Record<string, unknown>[];
  credit_notes: Record<string, unknown>[];
  quotes: Record<string, unknown>[];
  payments: Record<string, unknown>[];
  refunds: Record<string, unknown>[];
  audit_events: Record<string, unknown>[];
}

async function profileOf(deps: BillingDeps, tx: Tx, row: CustomerRow): Promise<Record<string, unknown>> {
  const erased = row.erased_at !== null;
  const plain = erased
    ? null
    : await customersCrypto.open(deps.cipher, tx, customerScope(row.org_id, row.id), row.id, row);
  const json = (v: string | null | undefined) => (v ? (JSON.parse(v) as unknown) : null);
  return {
    id: row.id,
    name: plain?.name ?? null,
    legal_name: plain?.legal_name ?? null,
    display_name: row.display_name,
    email: plain?.email ?? null,
    cc_emails: json(plain?.cc_emails) ?? [],
    phone: plain?.phone ?? null,
    address: json(plain?.billing_address),
    shipping_address: json(plain?.shipping_address),
    tax_id: plain?.tax_id ?? null,
    notes: plain?.notes ?? null,
    currency: row.currency,
    language: row.language,
    payment_terms_days: row.payment_terms_days,
    metadata: row.metadata,
    owner_user: row.owner_user_id,
    archived: row.archived_at !== null,
    erased,
    erased_at: row.erased_at?.toISOString() ?? null,
    legal_hold: row.legal_hold_at !== null,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

/** Everything about one person, decrypted: profile, documents, money, and the audit events about them. */
export async function exportCustomer(deps: BillingDeps, ctx: Ctx, id: string): Promise<CustomerExport> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    const row = await loadCustomer(tx, ctx, id, 'gdpr:export');
    const orgId = row.org_id;
    const cs = customerScope(orgId, id);
    const invoices = await tx
      .selectFrom('invoices')
      .selectAll()
      .where('customer_id', '=', id)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    const retained = new Set(
      (
        await tx
          .selectFrom('retained_buyer_details')
          .select('invoice_id')
          .where('customer_id', '=', id)
          .execute()
      ).map((r) => r.invoice_id),
    );
    const invoiceOut: Record<string, unknown>[] = [];
    for (const inv of invoices) {
      const buyerText = retained.has(inv.id)
        ? null
        : await decryptOrNull(
            deps.cipher,
            tx,
            { orgId },
            'invoices',
            'buyer_snapshot_enc',
            inv.id,
            inv.buyer_snapshot_enc,
          );
      invoiceOut.push({
        id: inv.id,
        number: inv.number,
        status: inv.status,
        currency: inv.currency,
        issue_date: inv.issue_date,
        due_date: inv.due_date,
        po_number: inv.po_number,
        notes: await decryptOrNull(deps.cipher, tx, cs, 'invoices', 'notes_enc', inv.id, inv.notes_enc),
        footer: inv.footer,
        buyer: retained.has(inv.id) ? { restricted: true } : buyerText ? JSON.parse(buyerText) : null,
        subtotal: n(inv.subtotal),
        tax: n(inv.tax_amount),
        total: n(inv.total),
        amount_paid: n(inv.amount_paid),
        amount_credited: n(inv.amount_credited),
        amount_remaining: n(inv.amount_remaining),
        created_at: inv.created_at.toISOString(),
        lines: linesOf(inv).map((l) => ({
          position: l.position,
          description: l.description,
          quantity: l.quantity,
          unit_amount: n(l.unit_amount),
          unit_amount_decimal: l.unit_amount_decimal,
          amount: n(l.amount),
          net_amount: n(l.net_amount),
        })),
      });
    }
    const creditNotes = await tx
      .selectFrom('credit_notes')
      .selectAll()
      .where('customer_id', '=', id)
      .orderBy('created_at')
      .execute();
    const quotes = await tx
      .selectFrom('quotes')
      .selectAll()
      .where('customer_id', '=', id)
      .orderBy('created_at')
      .execute();
    const payments = await tx
      .selectFrom('payments')
      .selectAll()
      .where('customer_id', '=', id)
      .orderBy('created_at')
      .execute();
    const refunds = await tx
      .selectFrom('refunds')
      .selectAll()
      .where('customer_id', '=', id)
      .orderBy('created_at')
      .execute();
    const balances = await sql<{ currency: string; balance: string }>`
      SELECT e.currency, coalesce(sum(l.credit - l.debit), 0)::text AS balance
        FROM journal_lines l JOIN journal_entries e ON e.org_id = l.org_id AND e.id = l.entry_id
       WHERE l.account = 'customer_credit' AND l.customer_id = ${id}
       GROUP BY e.currency ORDER BY e.currency`.execute(tx);
    const targets = [
      id,
      ...invoices.map((i) => i.id),
      ...creditNotes.map((c) => c.id),
      ...quotes.map((q) => q.id),
      ...payments.map((p) => p.id),
      ...refunds.map((r) => r.id),
    ];
    const events = await tx
      .selectFrom('audit_events')
      .select([
        'id',
        'occurred_at',
        'actor_type',
        'actor_id',
        'action',
        'target_type',
        'target_id',
        'outcome',
        'details',
      ])
      .where('target_id', 'in', targets)
      .orderBy('occurred_at')
      .orderBy('id')
      .execute();
    const out: CustomerExport = {
      object: 'customer_export',
      format_version: 1,
      generated_at: deps.clock.now().toISOString(),
      customer: await profileOf(deps, tx, row),
      credit_balance: balances.rows.map((b) => ({ currency: b.currency, amount: Number(b.balance) })),
      invoices: invoiceOut,
      credit_notes: creditNotes.map((c) => ({
        id: c.id,
        number: c.number,
        invoice: c.invoice_id,
        currency: c.currency,
        reason: c.reason,
        memo: c.memo,
        tax_exclusive_amount: n(c.tax_exclusive_amount),
        tax_amount: n(c.tax_amount),
        total: n(c.total),
        issue_date: c.issue_date,
        created_at: c.created_at.toISOString(),
      })),
      quotes: quotes.map((q) => {
        const content = q.content as unknown as {
          memo?: string | null;
          lines?: { description: string; quantity: string; unit_amount: string | null }[];
        };
        return {
          id: q.id,
          number: q.number,
          status: q.status,
          currency: q.currency,
          memo: content.memo ?? null,
          lines: (content.lines ?? []).map((l) => ({
            description: l.description,
            quantity: l.quantity,
            unit_amount: l.unit_amount === null ? null : Number(l.unit_amount),
          })),
          subtotal: n(q.subtotal),
          tax: n(q.tax_amount),
          total: n(q.total),
          expires_on: q.expires_on,
          invoice: q.invoice_id,
          created_at: q.created_at.toISOString(),
        };
      }),
      payments: [],
      refunds: [],
      audit_events: events.map((e) => ({
        id: e.id,
        occurred_at: e.occurred_at.toISOString(),
        action: e.action,
        outcome: e.outcome,
        actor_type: e.actor_type,
        actor_id: e.actor_id,
        target_type: e.target_type,
        target_id: e.target_id,
        details: e.details,
      })),
    };
    for (const p of payments) {
      out.payments.push({
        id: p.id,
        amount: n(p.amount),
        currency: p.currency,
        method: p.method,
        reference: await decryptOrNull(
          deps.cipher,
          tx,
          cs,
          'payments',
          'reference_enc',
          p.id,
          p.reference_enc,
        ),
        received_on: p.received_on,
        amount_unapplied: n(p.amount_unapplied),
        amount_refunded: n(p.amount_refunded),
        card_brand: p.card_brand,
        card_last4: p.card_last4,
        created_at: p.created_at.toISOString(),
      });
    }
    for (const r of refunds) {
      out.refunds.push({
        id: r.id,
        payment: r.payment_id,
        amount: n(r.amount),
        currency: r.currency,
        reason: await decryptOrNull(deps.cipher, tx, cs, 'refunds', 'reason_enc', r.id, r.reason_enc),
        status: r.status,
        created_at: r.created_at.toISOString(),
      });
    }
    await recordAudit(tx, {
      orgId,
      actor: ctx.actor,
      action: 'customer.exported',
      target: { type: 'customer', id },
      outcome: 'success',
      meta: ctx.meta,
      details: {
        invoices: out.invoices.length,
        credit_notes: out.credit_notes.length,
        quotes: out.quotes.length,
        payments: out.payments.length,
        refunds: out.refunds.length,
        audit_events: out.audit_events.length,
      },
    });
    return out;
  });
}

const cell = (v: unknown): CsvValue =>
  v === null || v === undefined
    ? null
    : typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean'
      ? v
      : JSON.stringify(v);

function table(rows: Record<string, unknown>[], columns: string[]): string {
  return csvTable(
    columns,
    rows.map((r) => Object.fromEntries(columns.map((c) => [c, cell(r[c])]))),
  );
}

/**
 * The same export as a set of CSV files, `{file name: CSV text}` (RFC 4180, CRLF, formula
 * injection neutralised); nested values (addresses, details) are JSON inside their cell.
 */
export function exportAsCsv(e: CustomerExport): Record<string, string> {
  const invoiceCols = [
    'id',
    'number',
    'status',
    'currency',
    'issue_date',
    'due_date',
    'po_number',
    'notes',
    'footer',
    'buyer',
    'subtotal',
    'tax',
    'total',
    'amount_paid',
    'amount_credited',
    'amount_remaining',
    'created_at',
  ];
  const lines = e.invoices.flatMap((i) =>
    ((i.lines as Record<string, unknown>[]) ?? []).map((l) => ({ invoice: i.id, ...l })),
  );
  return {
    'customer.csv': table([e.customer], Object.keys(e.customer)),
    'credit_balance.csv': table(e.credit_balance as unknown as Record<string, unknown>[], [
      'currency',
      'amount',
    ]),
    'invoices.csv': table(e.invoices, invoiceCols),
    'invoice_lines.csv': table(lines, [
      'invoice',
      'position',
      'description',
      'quantity',
      'unit_amount',
      'unit_amount_decimal',
      'amount',
      'net_amount',
    ]),
    'credit_notes.csv': table(e.credit_notes, [
      'id',
      'number',
      'invoice',
      'currency',
      'reason',
      'memo',
      'tax_exclusive_amount',
      'tax_amount',
      'total',
      'issue_date',
      'created_at',
    ]),
    'quotes.csv': table(e.quotes, [
      'id',
      'number',
      'status',
      'currency',
      'memo',
      'lines',
      'subtotal',
      'tax',
      'total',
      'expires_on',
      'invoice',
      'created_at',
    ]),
    'payments.csv': table(e.payments, [
      'id',
      'amount',
      'currency',
      'method',
      'reference',
      'received_on',
      'amount_unapplied',
      'amount_refunded',
      'card_brand',
      'card_last4',
      'created_at',
    ]),
    'refunds.csv': table(e.refunds, [
      'id',
      'payment',
      'amount',
      'currency',
      'reason',
      'status',
      'created_at',
    ]),
    'audit_events.csv': table(e.audit_events, [
      'id',
      'occurred_at',
      'action',
      'outcome',
      'actor_type',
      'actor_id',
      'target_type',
      'target_id',
      'details',
    ]),
  };
}

// ---------------------------------------------------------------------------------------------
// Legal hold

export interface LegalHoldView {
  customer: string;
  legal_hold: boolean;
  since: string | null;
  reason: string | null;
}

/** Puts (or releases, reason null) a legal hold: erasure is refused while it is on. */
export async function setLegalHold(
  deps: BillingDeps,
  ctx: Ctx,
  id: string,
  reason: string | null,
): Promise<LegalHoldView> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    const row = await loadCustomer(tx, ctx, id, 'gdpr:legal_hold');
    if (row.erased_at && reason !== null)
      throw new DomainError('customer_erased', 'This customer was erased; there is nothing left to hold.');
    const now = deps.clock.now();
    const updated = await tx
      .updateTable('customers')
      .set(
        reason === null
          ? { legal_hold_at: null, legal_hold_by: null, legal_hold_reason: null }
          : {
              legal_hold_at: row.legal_hold_at ?? now,
              legal_hold_by: ctx.actor.userId ?? ctx.actor.id,
              legal_hold_reason: reason,
            },
      )
      .where('id', '=', id)
      .returning(['legal_hold_at', 'legal_hold_reason'])
      .executeTakeFirstOrThrow();
    await recordAudit(tx, {
      orgId: row.org_id,
      actor: ctx.actor,
      action: reason === null ? 'customer.legal_hold_released' : 'customer.legal_hold_placed',
      target: { type: 'customer', id },
      outcome: 'success',
      meta: ctx.meta,
      details: { was_on_hold: row.legal_hold_at !== null },
    });
    return {
      customer: id,
      legal_hold: updated.legal_hold_at !== null,
      since: updated.legal_hold_at?.toISOString() ?? null,
      reason: updated.legal_hold_reason,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Erasure (Art. 17) with restricted retention (Art. 17(3)(b), Art. 18)

export interface ErasureResult {
  object: 'customer_erasure';
  customer: string;
  erased_at: string;
  reason: ErasureReason;
  /** Finalised invoices whose buyer details are kept, restricted, under the org's retention key. */
  invoices_retained: number;
  drafts_deleted: number;
  quotes_withdrawn: number;
  keys_destroyed: number;
  retain_years: number;
}

/**
 * Erases a customer by crypto-shredding, in one transaction: the buyer details of every
 * finalised invoice move to restricted retention under the org's retention key (kept until
 * issue date + the org's retention period), draft invoices are deleted, quotes are withdrawn
 * and their memo removed, cached idempotent replies naming the customer are forgotten, every
 * data key of the customer is destroyed, and the profile's ciphertexts and blind indexes are
 * cleared. Refused while a legal hold is on (409 legal_hold).
 */
export async function eraseCustomer(
  deps: PrivacyDeps,
  ctx: Ctx,
  id: string,
  reason: ErasureReason,
): Promise<ErasureResult> {
  const result = await inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    const row = await loadCustomer(tx, ctx, id, 'gdpr:erase');
    if (row.erased_at) throw new DomainError('customer_erased', 'This customer is already erased.');
    if (row.legal_hold_at)
      throw new DomainError(
        'legal_hold',
        'A legal hold is on this customer: release it (DELETE /v1/customers/{id}/legal_hold) before erasing.',
      );
    return eraseInTx(deps, tx, ctx, row, reason);
  });
  deps.cipher.forget?.();
  return result;
}

async function eraseInTx(
  deps: PrivacyDeps,
  tx: Tx,
  ctx: Ctx,
  row: CustomerRow,
  reason: ErasureReason,
): Promise<ErasureResult> {
  const orgId = row.org_id;
  const id = row.id;
  const now = deps.clock.now();
  const years = await retentionYears(tx);
  // 1. Buyer details of issued invoices: re-encrypted under the retention key of their year, restricted.
  const issued = await tx
    .selectFrom('invoices')
    .select(['id', 'issue_date', 'buyer_snapshot_enc'])
    .where('customer_id', '=', id)
    .where('status', '<>', 'draft')
    .where('buyer_snapshot_enc', 'is not', null)
    .orderBy('id')
    .execute();
  for (const inv of issued) {
    const plain = await deps.cipher.decrypt(
      tx,
      { orgId },
      { table: 'invoices', column: 'buyer_snapshot_enc', rowId: inv.id },
      inv.buyer_snapshot_enc as string,
    );
    const until = retainUntil(inv.issue_date ?? now.toISOString().slice(0, 10), years);
    const key = `y${until.slice(0, 4)}`;
    const details = await deps.cipher.encrypt(
      tx,
      retentionScope(orgId, key),
      { table: 'retained_buyer_details', column: 'details_enc', rowId: inv.id },
      plain,
    );
    await tx
      .insertInto('retained_buyer_details')
      .values({
        org_id: orgId,
        invoice_id: inv.id,
        customer_id: id,
        details_enc: details,
        retention_key: key,
        retain_until: until,
        restricted_at: now,
      })
      .execute();
    await tx.updateTable('invoices').set({ buyer_snapshot_enc: null }).where('id', '=', inv.id).execute();
  }
  // 2. Drafts go (nothing was issued); quotes are withdrawn and their free text dropped.
  const drafts = await tx
    .selectFrom('invoices')
    .select('id')
    .where('customer_id', '=', id)
    .where('status', '=', 'draft')
    .execute();
  const draftIds = drafts.map((d) => d.id);
  if (draftIds.length) {
    await tx.updateTable('quotes').set({ invoice_id: null }).where('invoice_id', 'in', draftIds).execute();
    await tx.deleteFrom('invoices').where('id', 'in', draftIds).execute();
  }
  const quotes = await tx
    .selectFrom('quotes')
    .select(['id', 'status', 'content'])
    .where('customer_id', '=', id)
    .execute();
  for (const q of quotes) {
    const content = { ...(q.content as unknown as Record<string, unknown>), memo: null };
    await tx
      .updateTable('quotes')
      .set({
        content: JSON.stringify(content),
        ...(q.status === 'draft' || q.status === 'sent' ? { status: 'expired' as const } : {}),
        updated_at: now,
      })
      .where('id', '=', q.id)
      .execute();
  }
  // 3. Idempotent replies are kept encrypted under the org key for a day and may repeat the
  // customer's details: forget those that name the customer.
  const idem = await tx
    .selectFrom('idempotency_keys')
    .select(['key', 'response_enc'])
    .where('response_enc', 'is not', null)
    .execute();
  for (const k of idem) {
    const body = await decryptOrNull(
      deps.cipher,
      tx,
      { orgId },
      'idempotency_keys',
      'response_enc',
      k.key,
      k.response_enc,
    );
    if (body === null || body.includes(id))
      await tx.deleteFrom('idempotency_keys').where('key', '=', k.key).execute();
  }
  // 4. Crypto-shredding: every data key of the customer (active, retired) is destroyed.
  const keys = await shredSubjectKeys(tx, { forget: () => deps.cipher.forget?.() }, orgId, {
    type: 'customer',
    id,
  });
  // 5. The profile keeps no PII: ciphertexts, blind indexes, free metadata gone; a neutral label.
  await tx
    .updateTable('customers')
    .set({
      name_enc: null,
      legal_name_enc: null,
      email_enc: null,
      email_bidx: null,
      cc_emails_enc: null,
      phone_enc: null,
      billing_address_enc: null,
      shipping_address_enc: null,
      tax_id_enc: null,
      tax_id_bidx: null,
      notes_enc: null,
      display_name: `Erased customer ${id}`,
      metadata: '{}',
      erased_at: now,
      archived_at: row.archived_at ?? now,
      version: sql<number>`version + 1`,
      updated_at: now,
    })
    .where('id', '=', id)
    .execute();
  const result: ErasureResult = {
    object: 'customer_erasure',
    customer: id,
    erased_at: now.toISOString(),
    reason,
    invoices_retained: issued.length,
    drafts_deleted: draftIds.length,
    quotes_withdrawn: quotes.length,
    keys_destroyed: keys,
    retain_years: years,
  };
  await recordAudit(tx, {
    orgId,
    actor: ctx.actor,
    action: 'customer.erased',
    target: { type: 'customer', id },
    outcome: 'success',
    meta: ctx.meta,
    details: {
      reason,
      invoices_retained: result.invoices_retained,
      drafts_deleted: result.drafts_deleted,
      quotes_withdrawn: result.quotes_withdrawn,
      keys_destroyed: keys,
      retain_years: years,
    },
  });
  // Remembered outside the database before commit: a restored older backup re-applies it.
  await deps.erasureLog?.record({ org_id: orgId, customer_id: id, erased_at: result.erased_at });
  return result;
}

/**
 * After a restore: every erasure remembered in the erasure log whose customer the restored
 * data still holds un-erased is applied again (as the system, legal holds notwithstanding:
 * the erasure already happened once). Returns the customers erased again.
 */
export async function reapplyErasures(deps: PrivacyDeps, log: ErasureLog): Promise<string[]> {
  const again: string[] = [];
  const seen = new Set<string>();
  for (const t of await log.list()) {
    const k = `${t.org_id}|${t.customer_id}`;
    if (seen.has(k)) continue;
    seen.add(k);
    const ctx = systemCtx(t.org_id, { requestId: 'restore' });
    const done = await inOrg(deps.db, t.org_id, async (tx) => {
      const row = await tx
        .selectFrom('customers')
        .selectAll()
        .where('id', '=', t.customer_id)
        .forUpdate()
        .executeTakeFirst();
      if (!row || row.erased_at) return false;
      if (row.legal_hold_at)
        await tx
          .updateTable('customers')
          .set({ legal_hold_at: null, legal_hold_by: null, legal_hold_reason: null })
          .where('id', '=', row.id)
          .execute();
      await eraseInTx({ ...deps, erasureLog: undefined }, tx, ctx, { ...row, legal_hold_at: null }, 'other');
      await recordAudit(tx, {
        orgId: t.org_id,
        actor: ctx.actor,
        action: 'customer.erasure_reapplied',
        target: { type: 'customer', id: t.customer_id },
        outcome: 'success',
        meta: ctx.meta,
        details: { originally_erased_at: t.erased_at },
      });
      return true;
    });
    if (done) again.push(t.customer_id);
  }
  deps.cipher.forget?.();
  return again;
}

// ---------------------------------------------------------------------------------------------
// Buyer details of an issued invoice (restricted after erasure)

export interface BuyerDetailsView {
  object: 'buyer_details';
  invoice: string;
  /** True when the customer was erased: the details are kept only for the legal retention period. */
  restricted: boolean;
  retain_until: string | null;
  purged: boolean;
  /** Masked for roles without customers:read_pii; null when restricted and the caller lacks restricted_data:read. */
  masked: boolean;
  details: { name: string | null; address: unknown; tax_id: string | null; email: string | null } | null;
}

/**
 * The buyer details frozen on an issued invoice. After the customer's erasure they are
 * restricted (Art. 18): only restricted_data:read (owner, auditor) sees them, and every
 * such read is audited; everyone else gets `restricted: true` without details.
 */
export async function getBuyerDetails(
  deps: BillingDeps,
  ctx: Ctx,
  invoiceId: string,
): Promise<BuyerDetailsView> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    const inv = await tx
      .selectFrom('invoices')
      .select(['id', 'org_id', 'customer_id', 'status', 'buyer_snapshot_enc'])
      .where('id', '=', invoiceId)
      .executeTakeFirst();
    if (!inv) throw new DomainError('not_found', 'No such invoice.', 'id');
    const cust = await tx
      .selectFrom('customers')
      .select(['org_id', 'owner_user_id'])
      .where('id', '=', inv.customer_id)
      .executeTakeFirstOrThrow();
    await authorize(tx, ctx, 'invoices:read', customerResource(cust));
    const kept = await tx
      .selectFrom('retained_buyer_details')
      .selectAll()
      .where('invoice_id', '=', invoiceId)
      .executeTakeFirst();
    const base = { object: 'buyer_details' as const, invoice: invoiceId };
    if (kept) {
      const allowed = can(ctx.actor, 'restricted_data:read');
      let details: BuyerDetailsView['details'] = null;
      if (allowed && kept.details_enc) {
        details = JSON.parse(
          await deps.cipher.decrypt(
            tx,
            retentionScope(inv.org_id, kept.retention_key),
            { table: 'retained_buyer_details', column: 'details_enc', rowId: invoiceId },
            kept.details_enc,
          ),
        );
        await recordAudit(tx, {
          orgId: inv.org_id,
          actor: ctx.actor,
          action: 'privacy.restricted_read',
          target: { type: 'invoice', id: invoiceId },
          outcome: 'success',
          meta: ctx.meta,
          details: { customer: inv.customer_id },
        });
      }
      return {
        ...base,
        restricted: true,
        retain_until: kept.retain_until,
        purged: kept.details_enc === null,
        masked: false,
        details,
      };
    }
    if (inv.buyer_snapshot_enc === null)
      return { ...base, restricted: false, retain_until: null, purged: false, masked: false, details: null };
    const d = JSON.parse(
      await deps.cipher.decrypt(
        tx,
        { orgId: inv.org_id },
        { table: 'invoices', column: 'buyer_snapshot_enc', rowId: invoiceId },
        inv.buyer_snapshot_enc,
      ),
    ) as NonNullable<BuyerDetailsView['details']>;
    const masked = !can(ctx.actor, 'customers:read_pii', customerResource(cust));
    if (!masked) {
      await recordAudit(tx, {
        orgId: inv.org_id,
        actor: ctx.actor,
        action: 'customer.pii_read',
        target: { type: 'customer', id: inv.customer_id },
        outcome: 'success',
        meta: ctx.meta,
        details: { via: 'buyer_details', invoice: invoiceId },
      });
    }
    return {
      ...base,
      restricted: false,
      retain_until: null,
      purged: false,
      masked,
      details: masked
        ? {
            name: d.name && maskName(d.name),
            address: null,
            tax_id: d.tax_id && maskTail(d.tax_id, 3),
            email: d.email && maskText(d.email),
          }
        : d,
    };
  });
}
