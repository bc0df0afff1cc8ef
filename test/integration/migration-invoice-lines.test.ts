// Migration 0019 moves invoice lines from their own table into the invoice's row. A database made
// before it (lines of a finalised invoice, of a draft, an invoice without lines, two orgs) must
// come out with every line, in order, amounts exact, and still immutable once finalised.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { linesOf } from '../../src/app/invoices.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { inOrg, MIGRATIONS_DIR_FOR_TESTS, migrate } from '../helpers/dbexports.js';

let t: TestDatabase;
const orgA = `org_${'a'.repeat(32)}`;
const orgB = `org_${'b'.repeat(32)}`;
const inv = (c: string) => `inv_${c.repeat(32)}`;
// beyond 2^53: JSON numbers would round it; the migration must keep it exact
const BIG = 9_007_199_254_740_993n;

before(async () => {
  t = await createTestDatabase({ migrate: false });
  // the schema as it was before 0019
  const dir = mkdtempSync(path.join(tmpdir(), 'bv-mig-0018-'));
  try {
    for (const f of readdirSync(MIGRATIONS_DIR_FOR_TESTS).filter((f) => f < '0019'))
      copyFileSync(path.join(MIGRATIONS_DIR_FOR_TESTS, f), path.join(dir, f));
    await migrate(t.pool, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // as the owner (a superuser here), the way a database of an earlier version holds its rows
  await sql`INSERT INTO orgs (id, name, base_currency) VALUES (${orgA}, 'A', 'EUR'), (${orgB}, 'B', 'EUR')`.execute(
    t.db,
  );
  for (const org of [orgA, orgB])
    await sql`INSERT INTO customers (org_id, id, name_enc) VALUES (${org}, ${`cus_${org.slice(4)}`}, 'bv1:x')`.execute(
      t.db,
    );
  // drafts first: the old guard takes lines for drafts only; two are finalised after
  const invoice = (org: string, id: string) =>
    sql`INSERT INTO invoices (org_id, id, customer_id, status, currency, rounding, payment_terms_days, subtotal,
        line_extension_amount, allowance_total_amount, charge_total_amount, tax_exclusive_amount, tax_amount, total,
        amount_due, amount_remaining)
      VALUES (${org}, ${id}, ${`cus_${org.slice(4)}`}, 'draft', 'EUR', 'half_up', 30, 0, 0, 0, 0, 0, 0, 0, 0, 0)`.execute(
      t.db,
    );
  await invoice(orgA, inv('1'));
  await invoice(orgA, inv('2'));
  await invoice(orgA, inv('3'));
  await invoice(orgB, inv('4'));
  const line = (org: string, id: string, position: number, description: string, amount: bigint) =>
    sql`INSERT INTO invoice_lines (org_id, invoice_id, position, product_id, description, quantity, unit_amount,
        unit_amount_decimal, discounts, tax_rates, gross_amount, discount_amount, charge_amount, amount, net_amount)
      VALUES (${org}, ${id}, ${position}, ${position === 0 ? 'prod_x' : null}, ${description}, '1.5',
        ${position === 1 ? null : amount}, ${position === 1 ? '0.125' : null},
        ${JSON.stringify(position === 0 ? [{ percent: '10' }] : [])}::jsonb,
        ${JSON.stringify([{ id: 'txr_1', percentage: '20' }])}::jsonb, ${amount}, 1, 0, ${amount - 1n}, ${amount - 1n})`;
  // inserted out of order: the array must be in position order
  await line(orgA, inv('1'), 1, 'Second "line", with \\ and ünïcode', 100n).execute(t.db);
  await line(orgA, inv('1'), 0, 'First line', BIG).execute(t.db);
  await line(orgA, inv('2'), 0, 'Draft line', 500n).execute(t.db);
  await line(orgB, inv('4'), 0, 'Other org', 700n).execute(t.db);
  await sql`UPDATE invoices SET status = 'open', number = 'INV-1', issue_date = '2026-01-01', due_date = '2026-01-31',
      finalized_at = now() WHERE id IN (${inv('1')}, ${inv('4')})`.execute(t.db);
  await migrate(t.pool);
});
after(() => t.drop());

const rowOf = async (org: string, id: string) =>
  inOrg(t.db, org, (tx) =>
    tx.selectFrom('invoices').select(['id', 'lines']).where('id', '=', id).executeTakeFirstOrThrow(),
  );

describe('migration 0019: invoice lines in the invoice row', () => {
  it('moves every line into its invoice, in position order, amounts exact', async () => {
    const lines = linesOf(await rowOf(orgA, inv('1')));
    assert.deepEqual(lines, [
      {
        position: 0,
        product_id: 'prod_x',
        description: 'First line',
        quantity: '1.5',
        unit_code: 'C62',
        unit_amount: BIG,
        unit_amount_decimal: null,
        discounts: [{ percent: '10' }],
        charges: [],
        tax_rates: [{ id: 'txr_1', percentage: '20' }],
        gross_amount: BIG,
        discount_amount: 1n,
        charge_amount: 0n,
        amount: BIG - 1n,
        net_amount: BIG - 1n,
      },
      {
        position: 1,
        product_id: null,
        description: 'Second "line", with \\ and ünïcode',
        quantity: '1.5',
        unit_code: 'C62',
        unit_amount: null,
        unit_amount_decimal: '0.125',
        discounts: [],
        charges: [],
        tax_rates: [{ id: 'txr_1', percentage: '20' }],
        gross_amount: 100n,
        discount_amount: 1n,
        charge_amount: 0n,
        amount: 99n,
        net_amount: 99n,
      },
    ]);
    assert.deepEqual(
      linesOf(await rowOf(orgA, inv('2'))).map((l) => [l.description, l.amount]),
      [['Draft line', 499n]],
    );
    assert.deepEqual(linesOf(await rowOf(orgA, inv('3'))), []);
    // each org's lines stayed with its own invoice
    assert.deepEqual(
      linesOf(await rowOf(orgB, inv('4'))).map((l) => l.description),
      ['Other org'],
    );
  });

  it('drops the lines table and keeps the invoices guarded and org-scoped', async () => {
    const left = await sql<{
      t: string | null;
    }>`SELECT to_regclass('public.invoice_lines')::text AS t`.execute(t.db);
    assert.equal(left.rows[0]?.t, null);
    // a finalised invoice's lines are refused a change, as the application role
    await assert.rejects(
      inOrg(t.db, orgA, (tx) =>
        sql`UPDATE invoices SET lines = jsonb_set(lines::jsonb, '{0,amount}', '"1"')::json WHERE id = ${inv('1')}`.execute(
          tx,
        ),
      ),
      /finalized and cannot be changed/,
    );
    // the migration lifted the forced row security for itself only
    const forced = await sql<{ relname: string; relforcerowsecurity: boolean }>`
      SELECT relname, relforcerowsecurity FROM pg_class WHERE relname = 'invoices'`.execute(t.db);
    assert.deepEqual(forced.rows, [{ relname: 'invoices', relforcerowsecurity: true }]);
    const other = await inOrg(t.db, orgA, (tx) =>
      tx.selectFrom('invoices').select('id').where('id', '=', inv('4')).execute(),
    );
    assert.deepEqual(other, []);
    // and the guard is on again (a draft may change, a finalised invoice may not)
    await inOrg(t.db, orgA, (tx) => sql`UPDATE invoices SET lines = '[]' WHERE id = ${inv('2')}`.execute(tx));
    await assert.rejects(
      inOrg(t.db, orgA, (tx) => sql`UPDATE invoices SET total = 1 WHERE id = ${inv('1')}`.execute(tx)),
      /finalized and cannot be changed/,
    );
  });
});
