import type { Command } from 'commander';
import type { z } from 'zod';
import { type Ctx, systemCtx } from '../../app/context.js';
import { type BillingDeps, type CustomerView, createCustomer, listCustomers } from '../../app/customers.js';
import type { ListPage } from '../../app/pagination.js';
import { createProduct, listProducts, type PriceView, type ProductView } from '../../app/products.js';
import { createTaxRate, listTaxRates, type TaxRateView } from '../../app/tax-rates.js';
import { loadConfig } from '../../config/config.js';
import { formatMinor } from '../../domain/money.js';
import { ListQuery } from '../../http/routes/common.js';
import { CustomerCreate } from '../../http/routes/customers.js';
import { ProductCreate } from '../../http/routes/products.js';
import { TaxRateCreate } from '../../http/routes/tax-rates.js';
import { openRuntime } from '../../main/runtime.js';
import { createIdentityDeps } from '../../main/server.js';
import { CliError, makeOut, type Out } from '../output.js';
import { resolveOrg } from './users.js';

export function out(cmd: Command): Out {
  return makeOut(Boolean((cmd.optsWithGlobals() as { json?: boolean }).json));
}

/** `prices.1.unit_amount` → `--price #2`, `tax_id` → `--tax-id`: errors name what the user typed. */
function optionName(path: PropertyKey[]): string {
  const [head, index] = path;
  if (head === 'prices' && typeof index === 'number') return `--price #${index + 1}`;
  if (head === 'tax_rates') return '--tax-rate';
  return head === undefined ? 'input' : `--${String(head).replaceAll('_', '-')}`;
}

/** Validates with the same zod schema as the HTTP API, so both ways in accept the same input. */
export function parse<T extends z.ZodType>(schema: T, input: Record<string, unknown>): z.output<T> {
  // Options left out are absent, as in a JSON body (so audit events list only the fields given).
  const given = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  const r = schema.safeParse(given);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new CliError(issue ? `${optionName(issue.path)}: ${issue.message}` : 'invalid input');
}

/** Whole minor units as typed on the command line; anything but digits is refused, never rounded. */
export function wholeNumber(value: string | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,20}$/.test(value)) throw new CliError(`${option} must be a whole number, got "${value}"`);
  return Number(value);
}

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `USD=1700` (whole minor units) or `USD=0.125` (a decimal string of minor units). */
function priceOption(spec: string): { currency: string; unit_amount?: number; unit_amount_decimal?: string } {
  const m = /^([A-Za-z]{3})=(\d+(?:\.\d+)?)$/.exec(spec);
  if (!m?.[1] || !m[2])
    throw new CliError(`--price "${spec}": expected CURRENCY=MINOR_UNITS, e.g. USD=1700 or USD=0.125`);
  return m[2].includes('.')
    ? { currency: m[1], unit_amount_decimal: m[2] }
    : { currency: m[1], unit_amount: Number(m[2]) };
}

/** Runs a use case as the system actor of the org (`--org`, or the only org). */
export async function asSystem<T>(
  org: string | undefined,
  fn: (deps: BillingDeps, ctx: Ctx) => Promise<T>,
): Promise<T> {
  const rt = await openRuntime(loadConfig(), { migrate: true });
  try {
    const identity = await createIdentityDeps(rt);
    const orgId = await resolveOrg(rt, org);
    return await fn({ db: identity.db, cipher: identity.cipher, clock: identity.clock }, systemCtx(orgId));
  } finally {
    await rt.close();
  }
}

export function pageOf(opts: { limit?: string; startingAfter?: string }) {
  return parse(ListQuery, {
    ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
    ...(opts.startingAfter !== undefined ? { starting_after: opts.startingAfter } : {}),
  });
}

function activeFilter(value: string | undefined): { active?: boolean } {
  if (value === undefined) return {};
  if (value !== 'true' && value !== 'false') throw new CliError('--active must be true or false');
  return { active: value === 'true' };
}

export function printList<T extends { id: string }>(
  o: Out,
  page: ListPage<T>,
  line: (item: T) => string,
): void {
  const text = page.data.length === 0 ? '(none)' : page.data.map(line).join('\n');
  o.result(page, text);
  const last = page.data[page.data.length - 1];
  if (page.has_more && last) o.info(`more: --starting-after ${last.id}`);
}

function priceText(p: PriceView): string {
  return p.unit_amount !== null
    ? `${formatMinor(BigInt(p.unit_amount), p.currency)} ${p.currency}`
    : `${p.unit_amount_decimal} ${p.currency} minor units`;
}

const rateText = (r: TaxRateView) =>
  `${r.id}  ${r.percentage}% ${r.category} ${r.inclusive ? 'inclusive' : 'exclusive'}${r.compound ? ' compound' : ''}${r.active ? '' : ' (inactive)'}  ${r.name}`;
const productText = (p: ProductView) =>
  `${p.id}  ${p.prices.map(priceText).join(', ')}${p.active ? '' : ' (inactive)'}  ${p.name}`;
const customerText = (c: CustomerView) =>
  `${c.id}  ${c.name}${c.email ? ` <${c.email}>` : ''}${c.archived ? ' (archived)' : ''}`;

/** customer create|list, tax-rate create|list, product create|list: the system actor in one org. */
export function registerCatalogCommands(program: Command): void {
  const customer = program.command('customer').description('manage customers');
  customer
    .command('create')
    .description('create a customer (PII is encrypted under the customer’s own data key)')
    .requiredOption('--name <name>', 'the customer’s name')
    .option('--legal-name <name>', 'legal or company name')
    .option('--display-name <label>', 'a non-sensitive label for prefix search')
    .option('--email <email>', 'billing email address')
    .option('--phone <phone>', 'phone number')
    .option('--tax-id <id>', 'VAT number, EIN, …')
    .option('--currency <code>', 'preferred ISO 4217 currency')
    .option('--language <tag>', 'preferred language, e.g. en or de-AT')
    .option('--payment-terms-days <days>', 'payment terms in days (default 30)')
    .option('--notes <text>', 'internal notes')
    .option('--org <id>', 'org id (default: the only org)')
    .action(
      async (
        opts: {
          name: string;
          legalName?: string;
          displayName?: string;
          email?: string;
          phone?: string;
          taxId?: string;
          currency?: string;
          language?: string;
          paymentTermsDays?: string;
          notes?: string;
          org?: string;
        },
        cmd: Command,
      ) => {
        const o = out(cmd);
        const input = parse(CustomerCreate, {
          name: opts.name,
          legal_name: opts.legalName,
          display_name: opts.displayName,
          email: opts.email,
          phone: opts.phone,
          tax_id: opts.taxId,
          currency: opts.currency,
          language: opts.language,
          payment_terms_days: wholeNumber(opts.paymentTermsDays, '--payment-terms-days'),
          notes: opts.notes,
        });
        const c = await asSystem(opts.org, (deps, ctx) => createCustomer(deps, ctx, input));
        o.result(c, `created customer ${c.id}`);
      },
    );
  customer
    .command('list')
    .description('list customers, newest first')
    .option('--email <email>', 'exact email (blind-index search)')
    .option('--tax-id <id>', 'exact tax id (blind-index search)')
    .option('--display-name-prefix <prefix>', 'display-name prefix')
    .option('--include-archived', 'include archived customers')
    .option('--limit <n>', 'page size, 1 to 100 (default 20)')
    .option('--starting-after <id>', 'the last id of the previous page')
    .option('--org <id>', 'org id (default: the only org)')
    .action(
      async (
        opts: {
          email?: string;
          taxId?: string;
          displayNamePrefix?: string;
          includeArchived?: boolean;
          limit?: string;
          startingAfter?: string;
          org?: string;
        },
        cmd: Command,
      ) => {
        const o = out(cmd);
        const filter = {
          ...pageOf(opts),
          ...(opts.email !== undefined ? { email: opts.email } : {}),
          ...(opts.taxId !== undefined ? { tax_id: opts.taxId } : {}),
          ...(opts.displayNamePrefix !== undefined ? { display_name_prefix: opts.displayNamePrefix } : {}),
          include_archived: opts.includeArchived === true,
        };
        const page = await asSystem(opts.org, (deps, ctx) => listCustomers(deps, ctx, filter));
        printList(o, page, customerText);
      },
    );

  const taxRate = program.command('tax-rate').description('manage tax rates (terms are immutable)');
  taxRate
    .command('create')
    .description('create a tax rate')
    .requiredOption('--name <name>', 'a label, e.g. "VAT 20%"')
    .requiredOption('--percentage <decimal>', 'a decimal string with at most 6 decimals, e.g. 20 or 7.125')
    .requiredOption('--category <code>', 'EN 16931 VAT category: S, Z, E, AE, K, G, O, L or M')
    .option('--inclusive', 'prices already include this tax')
    .option('--compound', 'applied on top of the other taxes of the line')
    .option('--exemption-reason <text>', 'required for E, AE, K, G and O')
    .option('--exemption-reason-code <code>', 'VATEX code, e.g. VATEX-EU-AE')
    .option('--jurisdiction <code>', 'e.g. DE or CA-QC')
    .option('--org <id>', 'org id (default: the only org)')
    .action(
      async (
        opts: {
          name: string;
          percentage: string;
          category: string;
          inclusive?: boolean;
          compound?: boolean;
          exemptionReason?: string;
          exemptionReasonCode?: string;
          jurisdiction?: string;
          org?: string;
        },
        cmd: Command,
      ) => {
        const o = out(cmd);
        const input = parse(TaxRateCreate, {
          name: opts.name,
          percentage: opts.percentage,
          category: opts.category,
          inclusive: opts.inclusive === true,
          compound: opts.compound === true,
          exemption_reason: opts.exemptionReason,
          exemption_reason_code: opts.exemptionReasonCode,
          jurisdiction: opts.jurisdiction,
        });
        const r = await asSystem(opts.org, (deps, ctx) => createTaxRate(deps, ctx, input));
        o.result(r, `created tax rate ${rateText(r)}`);
      },
    );
  taxRate
    .command('list')
    .description('list tax rates, newest first')
    .option('--active <true|false>', 'only active or only inactive rates')
    .option('--limit <n>', 'page size, 1 to 100 (default 20)')
    .option('--starting-after <id>', 'the last id of the previous page')
    .option('--org <id>', 'org id (default: the only org)')
    .action(
      async (
        opts: { active?: string; limit?: string; startingAfter?: string; org?: string },
        cmd: Command,
      ) => {
        const o = out(cmd);
        const filter = { ...pageOf(opts), ...activeFilter(opts.active) };
        const page = await asSystem(opts.org, (deps, ctx) => listTaxRates(deps, ctx, filter));
        printList(o, page, rateText);
      },
    );

  const product = program.command('product').description('manage products and their prices');
  product
    .command('create')
    .description('create a product with a price (more with --price) and default tax rates')
    .requiredOption('--name <name>', 'product or service name')
    .requiredOption('--currency <code>', 'ISO 4217 currency of the primary price')
    .option('--unit-amount <minor>', 'primary price in whole minor units, e.g. 1500 for 15.00 EUR')
    .option('--unit-amount-decimal <decimal>', 'primary price as a decimal of minor units, e.g. 0.125')
    .option('--price <CUR=AMOUNT>', 'another price, e.g. USD=1700 or USD=0.125 (repeatable)', collect, [])
    .option('--tax-rate <id>', 'a default tax rate txr_… (repeatable)', collect, [])
    .option('--description <text>', 'description')
    .option('--unit-code <code>', 'UN/ECE Rec. 20 unit code (default C62; HUR = hour)')
    .option('--org <id>', 'org id (default: the only org)')
    .action(
      async (
        opts: {
          name: string;
          currency: string;
          unitAmount?: string;
          unitAmountDecimal?: string;
          price: string[];
          taxRate: string[];
          description?: string;
          unitCode?: string;
          org?: string;
        },
        cmd: Command,
      ) => {
        const o = out(cmd);
        const input = parse(ProductCreate, {
          name: opts.name,
          currency: opts.currency,
          unit_amount: wholeNumber(opts.unitAmount, '--unit-amount'),
          unit_amount_decimal: opts.unitAmountDecimal,
          ...(opts.price.length > 0 ? { prices: opts.price.map(priceOption) } : {}),
          ...(opts.taxRate.length > 0 ? { tax_rates: opts.taxRate } : {}),
          description: opts.description,
          unit_code: opts.unitCode,
        });
        const p = await asSystem(opts.org, (deps, ctx) => createProduct(deps, ctx, input));
        o.result(p, `created product ${productText(p)}`);
      },
    );
  product
    .command('list')
    .description('list products, newest first')
    .option('--active <true|false>', 'only active or only inactive products')
    .option('--limit <n>', 'page size, 1 to 100 (default 20)')
    .option('--starting-after <id>', 'the last id of the previous page')
    .option('--org <id>', 'org id (default: the only org)')
    .action(
      async (
        opts: { active?: string; limit?: string; startingAfter?: string; org?: string },
        cmd: Command,
      ) => {
        const o = out(cmd);
        const filter = { ...pageOf(opts), ...activeFilter(opts.active) };
        const page = await asSystem(opts.org, (deps, ctx) => listProducts(deps, ctx, filter));
        printList(o, page, productText);
      },
    );
}
