import { inOrg, type Tx } from '../adapters/db/index.js';
import { newId } from '../domain/ids.js';
import type { InvoiceStatus } from '../domain/invoice-transitions.js';
import {
  type Account,
  type InvoiceBalanceView,
  type JournalEntry,
  type LedgerProblem,
  trialBalance,
  verifyLedger,
} from '../domain/ledger.js';
import { authorize } from './authz.js';
import type { Ctx } from './context.js';
import type { BillingDeps } from './customers.js';

/** The rows of one journal entry: the entry and its lines. */
export function entryRows(orgId: string, entry: JournalEntry, at: Date) {
  const id = newId('journal_entry');
  return {
    id,
    entry: {
      org_id: orgId,
      id,
      kind: entry.kind,
      currency: entry.currency,
      reference: entry.reference,
      posted_at: at,
    },
    lines: entry.lines.map((l, i) => ({
      org_id: orgId,
      entry_id: id,
      line_no: i,
      account: l.account,
      debit: l.debit,
      credit: l.credit,
      customer_id: l.customer ?? null,
      invoice_id: l.invoice ?? null,
      tax_group: l.tax_group ?? null,
    })),
  };
}

/** Writes a balanced journal entry (the domain built and checked it; the database re-checks at commit). */
export async function postEntry(tx: Tx, orgId: string, entry: JournalEntry, at: Date): Promise<string> {
  const rows = entryRows(orgId, entry, at);
  // One statement: the lines' foreign key is checked at its end, the balance at commit.
  await tx
    .with('e', (db) => db.insertInto('journal_entries').values(rows.entry))
    .insertInto('journal_lines')
    .values(rows.lines)
    .execute();
  return rows.id;
}

/** Reads the org's whole journal back into domain entries. */
export async function loadJournal(tx: Tx): Promise<JournalEntry[]> {
  const entries = await tx
    .selectFrom('journal_entries')
    .selectAll()
    .orderBy('posted_at')
    .orderBy('id')
    .execute();
  const lines = await tx
    .selectFrom('journal_lines')
    .selectAll()
    .orderBy('entry_id')
    .orderBy('line_no')
    .execute();
  const byEntry = new Map<string, typeof lines>();
  for (const l of lines) {
    const list = byEntry.get(l.entry_id) ?? [];
    list.push(l);
    byEntry.set(l.entry_id, list);
  }
  return entries.map((e) => ({
    kind: e.kind as JournalEntry['kind'],
    currency: e.currency,
    reference: e.reference,
    lines: (byEntry.get(e.id) ?? []).map((l) => ({
      account: l.account as Account,
      debit: l.debit,
      credit: l.credit,
      ...(l.customer_id ? { customer: l.customer_id } : {}),
      ...(l.invoice_id ? { invoice: l.invoice_id } : {}),
      ...(l.tax_group ? { tax_group: l.tax_group } : {}),
    })),
  }));
}

export interface LedgerReport {
  ok: boolean;
  entries: number;
  invoices: number;
  trial_balance: { currency: string; account: string; debit: string; credit: string; balance: string }[];
  problems: LedgerProblem[];
}

/** Checks the invariants of DESIGN.md §4 for the actor's org and reports every difference. */
export async function verifyOrgLedger(deps: Pick<BillingDeps, 'db'>, ctx: Ctx): Promise<LedgerReport> {
  return inOrg(
    deps.db,
    ctx.actor.orgId,
    async (tx) => {
      await authorize(tx, ctx, 'ledger:read');
      const entries = await loadJournal(tx);
      const invoices = await tx
        .selectFrom('invoices')
        .select(['id', 'customer_id', 'currency', 'status', 'amount_remaining'])
        .where('status', '!=', 'draft')
        .execute();
      const views: InvoiceBalanceView[] = invoices.map((i) => ({
        invoice: i.id,
        customer: i.customer_id,
        currency: i.currency,
        status: i.status as InvoiceStatus,
        amount_remaining: i.amount_remaining,
      }));
      const problems = verifyLedger(entries, views);
      const tb = trialBalance(entries);
      return {
        ok: problems.length === 0,
        entries: entries.length,
        invoices: views.length,
        trial_balance: tb.accounts.map((a) => ({
          currency: a.currency,
          account: a.account,
          debit: a.debit.toString(),
          credit: a.credit.toString(),
          balance: a.balance.toString(),
        })),
        problems,
      };
    },
    { isolation: 'repeatable read' },
  );
}
