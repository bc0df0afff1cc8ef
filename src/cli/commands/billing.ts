import type { Command } from 'commander';
import { type Ctx, systemCtx } from '../../app/context.js';
import { type CreditNoteView, createCreditNote } from '../../app/credit-notes.js';
import type { BillingDeps } from '../../app/customers.js';
import {
  createInvoice,
  finalizeInvoice,
  getInvoice,
  type InvoiceView,
  listInvoices,
  voidInvoice,
} from '../../app/invoices.js';
import { memberActorAsOperator } from '../../app/operators.js';
import { listPayments, type PaymentView, recordPayment } from '../../app/payments.js';
import { createRefund, type RefundView } from '../../app/refunds.js';
import { loadConfig } from '../../config/config.js';
import { INVOICE_STATUSES } from '../../domain/invoice-transitions.js';
import { formatMinor } from '../../domain/money.js';
import { CreditNoteCreate } from '../../http/routes/credit-notes.js';
import { Finalize, InvoiceCreate } from '../../http/routes/invoices.js';
import { PaymentCreate } from '../../http/routes/payments.js';
import { RefundCreate } from '../../http/routes/refunds.js';
import { openRuntime } from '../../main/runtime.js';
import { createIdentityDeps } from '../../main/server.js';
import { CliError } from '../output.js';
import { collect, out, pageOf, parse, printList, wholeNumber } from './catalog.js';
import { resolveOrg } from './users.js';

interface Who {
  org?: string;
  as?: string;
}

/**
 * Runs a use case in one org (`--org`, or the only org) as a named member (`--as EMAIL`: their
 * role, their audit trail, their four-eyes identity), or as the system actor holding the owner
 * role when `--as` is left out (as the catalog commands do).
 */
async function acting<T>(who: Who, fn: (deps: BillingDeps, ctx: Ctx) => Promise<T>): Promise<T> {
  const rt = await openRuntime(loadConfig(), { migrate: true });
  try {
    const identity = await createIdentityDeps(rt);
    const orgId = await resolveOrg(rt, who.org);
    const ctx: Ctx = who.as
      ? { actor: await memberActorAsOperator(identity.db, orgId, who.as), meta: {} }
      : systemCtx(orgId);
    return await fn({ db: identity.db, cipher: identity.cipher, clock: identity.clock }, ctx);
  } finally {
    await rt.close();
  }
}

const money = (amount: number, currency: string) => `${formatMinor(BigInt(amount), currency)} ${currency}`;

const invoiceText = (i: InvoiceView) =>
  `${i.id}  ${i.number ?? '(draft)'}  ${i.status}  total ${money(i.total, i.currency)}  due ${money(i.amount_remaining, i.currency)}`;
const paymentText = (p: PaymentView) =>
  `${p.id}  ${money(p.amount, p.currency)}  ${p.method}  applied ${money(p.amount_applied, p.currency)}  unapplied ${money(p.amount_unapplied, p.currency)}${p.disputed ? '  DISPUTED' : ''}`;
const creditNoteText = (c: CreditNoteView) =>
  `${c.id}  ${c.number}  ${money(c.total, c.currency)}  invoice ${c.invoice}`;
const refundText = (r: RefundView) => `${r.id}  ${money(r.amount, r.currency)}  ${r.status}`;

/** `QTY:UNIT_AMOUNT:DESCRIPTION` (the description may hold colons) → an invoice line. */
function lineOption(spec: string, taxRates: string[]) {
  const m = /^([0-9]+(?:\.[0-9]+)?):([0-9]+):(.+)$/.exec(spec);
  if (!m?.[1] || !m[2] || !m[3])
    throw new CliError(`--line "${spec}": expected QTY:UNIT_AMOUNT:DESCRIPTION, e.g. 2:1500:Consulting`);
  return {
    quantity: m[1],
    unit_amount: Number(m[2]),
    description: m[3],
    ...(taxRates.length > 0 ? { tax_rates: taxRates } : {}),
  };
}

/** `inv_…=AMOUNT` → an explicit allocation. */
function allocationOption(spec: string) {
  const m = /^(inv_[0-9a-z]{32})=([0-9]{1,16})$/.exec(spec);
  if (!m?.[1] || !m[2]) throw new CliError(`--allocate "${spec}": expected INVOICE_ID=AMOUNT`);
  return { invoice: m[1], amount: Number(m[2]) };
}

const WHO = (c: Command) =>
  c
    .option('--org <id>', 'org id (default: the only org)')
    .option('--as <email>', 'act as this member of the org (default: the system actor, owner role)');

/** invoice list|show|create|finalize|void, credit-note create, payment record|list, refund create. */
export function registerBillingCommands(program: Command): void {
  const invoice = program.command('invoice').description('invoices: drafts, finalisation, void');
  WHO(
    invoice
      .command('list')
      .description('list invoices, newest first')
      .option('--status <status>', INVOICE_STATUSES.join('|'))
      .option('--customer <id>', 'only this customer’s invoices')
      .option('--limit <n>', 'page size, 1 to 100 (default 20)')
      .option('--starting-after <id>', 'the last id of the previous page'),
  ).action(
    async (
      opts: Who & { status?: string; customer?: string; limit?: string; startingAfter?: string },
      cmd: Command,
    ) => {
      const o = out(cmd);
      if (opts.status !== undefined && !(INVOICE_STATUSES as readonly string[]).includes(opts.status))
        throw new CliError(`--status must be one of ${INVOICE_STATUSES.join(', ')}`);
      const filter = {
        ...pageOf(opts),
        ...(opts.status ? { status: opts.status as (typeof INVOICE_STATUSES)[number] } : {}),
        ...(opts.customer ? { customer: opts.customer } : {}),
      };
      const page = await acting(opts, (deps, ctx) => listInvoices(deps, ctx, filter));
      printList(o, page, invoiceText);
    },
  );
  WHO(invoice.command('show').description('one invoice with its lines and totals').argument('<id>')).action(
    async (id: string, opts: Who, cmd: Command) => {
      const o = out(cmd);
      const i = await acting(opts, (deps, ctx) => getInvoice(deps, ctx, id));
      const lines = i.lines.map(
        (l) => `  ${l.quantity} × ${l.description}  ${money(l.net_amount, i.currency)}`,
      );
      o.result(i, [invoiceText(i), ...lines, `  tax ${money(i.tax, i.currency)}`].join('\n'));
    },
  );
  WHO(
    invoice
      .command('create')
      .description('create a draft invoice')
      .requiredOption('--customer <id>', 'cus_…')
      .requiredOption(
        '--line <QTY:UNIT_AMOUNT:DESCRIPTION>',
        'a line, unit amount in minor units (repeatable)',
        collect,
        [],
      )
      .option('--currency <code>', 'ISO 4217 (default: the customer’s)')
      .option('--tax-rate <id>', 'a tax rate txr_… for every line (repeatable)', collect, [])
      .option('--due-date <YYYY-MM-DD>', 'due date')
      .option('--po-number <text>', 'purchase order number'),
  ).action(
    async (
      opts: Who & {
        customer: string;
        line: string[];
        currency?: string;
        taxRate: string[];
        dueDate?: string;
        poNumber?: string;
      },
      cmd: Command,
    ) => {
      const o = out(cmd);
      if (opts.line.length === 0) throw new CliError('give at least one --line');
      const input = parse(InvoiceCreate, {
        customer: opts.customer,
        currency: opts.currency,
        lines: opts.line.map((l) => lineOption(l, opts.taxRate)),
        due_date: opts.dueDate,
        po_number: opts.poNumber,
      });
      const i = await acting(opts, (deps, ctx) => createInvoice(deps, ctx, input));
      o.result(i, `created ${invoiceText(i)}`);
    },
  );
  WHO(
    invoice
      .command('finalize')
      .description('finalise a draft: number it, freeze it, post it to the ledger')
      .argument('<id>')
      .option('--issue-date <YYYY-MM-DD>', 'issue date (default today)'),
  ).action(async (id: string, opts: Who & { issueDate?: string }, cmd: Command) => {
    const o = out(cmd);
    const input = parse(Finalize, { issue_date: opts.issueDate });
    const i = await acting(opts, (deps, ctx) => finalizeInvoice(deps, ctx, id, input));
    o.result(i, `finalized ${invoiceText(i)}`);
  });
  WHO(
    invoice.command('void').description('void an open invoice (its number stays used)').argument('<id>'),
  ).action(async (id: string, opts: Who, cmd: Command) => {
    const o = out(cmd);
    const i = await acting(opts, (deps, ctx) => voidInvoice(deps, ctx, id));
    o.result(i, `voided ${invoiceText(i)}`);
  });

  const creditNote = program.command('credit-note').description('credit notes against finalised invoices');
  WHO(
    creditNote
      .command('create')
      .description('credit an invoice in full, or by --amount')
      .requiredOption('--invoice <id>', 'inv_…')
      .requiredOption('--reason <reason>', 'duplicate, fraudulent, order_change, product_unsatisfactory, …')
      .option('--amount <minor>', 'credit this much (default: everything still creditable)')
      .option('--memo <text>', 'a note on the credit note'),
  ).action(
    async (opts: Who & { invoice: string; reason: string; amount?: string; memo?: string }, cmd: Command) => {
      const o = out(cmd);
      const input = parse(CreditNoteCreate, {
        invoice: opts.invoice,
        reason: opts.reason,
        amount: wholeNumber(opts.amount, '--amount'),
        memo: opts.memo,
      });
      const c = await acting(opts, (deps, ctx) => createCreditNote(deps, ctx, input));
      o.result(c, `created credit note ${creditNoteText(c)}`);
    },
  );

  const payment = program.command('payment').description('payments received');
  WHO(
    payment
      .command('record')
      .description(
        'record a payment; allocated oldest due first unless --allocate; the rest is customer credit',
      )
      .requiredOption('--customer <id>', 'cus_…')
      .requiredOption('--amount <minor>', 'amount in minor units')
      .requiredOption('--currency <code>', 'ISO 4217')
      .requiredOption('--method <method>', 'bank_transfer|card|cash|cheque|other')
      .option('--reference <text>', 'remittance reference (stored encrypted)')
      .option('--received-on <YYYY-MM-DD>', 'value date (default today)')
      .option('--allocate <INVOICE=AMOUNT>', 'explicit allocation (repeatable)', collect, [])
      .option(
        '--excess <reject|credit>',
        'an allocation above the remainder: refuse (default) or keep as credit',
      ),
  ).action(
    async (
      opts: Who & {
        customer: string;
        amount: string;
        currency: string;
        method: string;
        reference?: string;
        receivedOn?: string;
        allocate: string[];
        excess?: string;
      },
      cmd: Command,
    ) => {
      const o = out(cmd);
      const input = parse(PaymentCreate, {
        customer: opts.customer,
        amount: wholeNumber(opts.amount, '--amount'),
        currency: opts.currency,
        method: opts.method,
        reference: opts.reference,
        received_on: opts.receivedOn,
        ...(opts.allocate.length > 0 ? { allocations: opts.allocate.map(allocationOption) } : {}),
        excess: opts.excess,
      });
      const p = await acting(opts, (deps, ctx) => recordPayment(deps, ctx, input));
      o.result(p, `recorded payment ${paymentText(p)}`);
    },
  );
  WHO(
    payment
      .command('list')
      .description('list payments, newest first')
      .option('--customer <id>', 'only this customer’s payments')
      .option('--limit <n>', 'page size, 1 to 100 (default 20)')
      .option('--starting-after <id>', 'the last id of the previous page'),
  ).action(
    async (opts: Who & { customer?: string; limit?: string; startingAfter?: string }, cmd: Command) => {
      const o = out(cmd);
      const filter = { ...pageOf(opts), ...(opts.customer ? { customer: opts.customer } : {}) };
      const page = await acting(opts, (deps, ctx) => listPayments(deps, ctx, filter));
      printList(o, page, paymentText);
    },
  );

  const refund = program
    .command('refund')
    .description('refunds (four eyes above refunds.approval_threshold)');
  WHO(
    refund
      .command('create')
      .description('refund a payment’s unapplied money (--payment) or customer credit (--customer)')
      .option('--payment <id>', 'pay_…')
      .option('--customer <id>', 'cus_…')
      .option('--currency <code>', 'for a refund of customer credit')
      .requiredOption('--amount <minor>', 'amount in minor units')
      .requiredOption('--reason <text>', 'why (stored encrypted)'),
  ).action(
    async (
      opts: Who & { payment?: string; customer?: string; currency?: string; amount: string; reason: string },
      cmd: Command,
    ) => {
      const o = out(cmd);
      const input = parse(RefundCreate, {
        payment: opts.payment,
        customer: opts.customer,
        currency: opts.currency,
        amount: wholeNumber(opts.amount, '--amount'),
        reason: opts.reason,
      });
      const r = await acting(opts, (deps, ctx) => createRefund(deps, ctx, input));
      o.result(r, `${r.status === 'posted' ? 'refunded' : 'requested refund'} ${refundText(r)}`);
    },
  );
}
