import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { open, seal } from '../../src/adapters/crypto/aead.js';
import { encryptedTable } from '../../src/adapters/crypto/encrypted-columns.js';
import { createFieldCipher } from '../../src/adapters/crypto/field-cipher.js';
import { LocalKeyProvider } from '../../src/adapters/crypto/key-provider.js';
import { type Db, inOrg } from '../../src/adapters/db/index.js';
import { createOrg } from '../../src/app/orgs.js';
import { newId } from '../../src/domain/ids.js';
import { type BenchContext, opsPerSecond, type Scenario } from '../harness.js';

const FIELD_200 = 'x'.repeat(200);
const ROWS = 10_000;
const BATCH = 500;

/** The raw primitive: AES-256-GCM seal + open of a 200-byte field with its AAD. */
async function primitive() {
  const key = randomBytes(32);
  const aad = Buffer.from('["bv1","org_x","","","customers","name_enc","cus_x","dk_x"]');
  const plain = Buffer.from(FIELD_200);
  return opsPerSecond(() => {
    open(key, seal(key, plain, aad), aad);
  }, 1000);
}

/** The field cipher (envelope, cached data key, usage accounting) inside one org transaction. */
async function fieldCipher(ctx: BenchContext) {
  const { db } = await ctx.freshDatabase();
  const org = (await createOrg(db, { name: 'Bench', baseCurrency: 'EUR' })).id;
  const cipher = createFieldCipher(new LocalKeyProvider([randomBytes(32)], 'bench'));
  const field = { table: 'customers', column: 'name_enc', rowId: 'cus_bench' };
  const scope = { orgId: org, subject: { type: 'customer' as const, id: 'cus_bench' } };
  let ops = 0;
  await inOrg(db, org, async (tx) => {
    ops = await opsPerSecond(async () => {
      const ct = await cipher.encrypt(tx, scope, field, FIELD_200);
      await cipher.decrypt(tx, scope, field, ct);
    }, 1000);
  });
  return ops;
}

const PII = {
  name: (i: number) => `Customer Number ${i} GmbH & Co. KG`,
  email: (i: number) => `billing.customer${i}@example-company.org`,
  phone: (i: number) => `+49 30 ${String(1_000_000 + i)}`,
  address: (i: number) => `Hauptstraße ${i}, 10115 Berlin, Germany`,
  tax_id: (i: number) => `DE${String(100_000_000 + i)}`,
};

const benchCustomers = encryptedTable({
  table: 'bench_customers_enc',
  idColumn: 'id',
  orgColumn: 'org_id',
  subject: { type: 'customer', column: 'id' },
  fields: {
    name: 'name_enc',
    email: { column: 'email_enc', blindIndex: { column: 'email_bidx', purpose: 'email' } },
    phone: 'phone_enc',
    address: 'address_enc',
    tax_id: 'tax_id_enc',
  },
});

async function makeTables(db: Db) {
  await sql`CREATE TABLE bench_customers_plain (org_id text NOT NULL, id text NOT NULL, name text, email text,
    phone text, address text, tax_id text, PRIMARY KEY (org_id, id))`.execute(db);
  await sql`CREATE INDEX ON bench_customers_plain (org_id, email)`.execute(db);
  await sql`CREATE TABLE bench_customers_enc (org_id text NOT NULL, id text NOT NULL, name_enc text, email_enc text,
    email_bidx text, phone_enc text, address_enc text, tax_id_enc text, PRIMARY KEY (org_id, id))`.execute(
    db,
  );
  await sql`CREATE INDEX ON bench_customers_enc (org_id, email_bidx)`.execute(db);
  await sql`GRANT SELECT, INSERT ON bench_customers_plain, bench_customers_enc TO billvault_app`.execute(db);
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Inserting and reading 10,000 customers (5 PII fields, one key per customer) encrypted vs plain. */
async function customers(ctx: BenchContext) {
  const { db } = await ctx.freshDatabase();
  await makeTables(db);
  const org = (await createOrg(db, { name: 'Bench', baseCurrency: 'EUR' })).id;
  const kp = new LocalKeyProvider([randomBytes(32)], 'bench');
  const cipher = createFieldCipher(kp);
  const ids = Array.from({ length: ROWS }, () => newId('customer'));

  const plainInsert = await timed(async () => {
    for (let b = 0; b < ROWS; b += BATCH) {
      await inOrg(db, org, async (tx) => {
        const rows = ids.slice(b, b + BATCH).map((id, j) => {
          const i = b + j;
          return {
            org_id: org,
            id,
            name: PII.name(i),
            email: PII.email(i),
            phone: PII.phone(i),
            address: PII.address(i),
            tax_id: PII.tax_id(i),
          };
        });
        await sql`INSERT INTO bench_customers_plain (org_id, id, name, email, phone, address, tax_id) VALUES ${sql.join(
          rows.map(
            (r) => sql`(${r.org_id}, ${r.id}, ${r.name}, ${r.email}, ${r.phone}, ${r.address}, ${r.tax_id})`,
          ),
        )}`.execute(tx);
      });
    }
  });

  const encInsert = await timed(async () => {
    for (let b = 0; b < ROWS; b += BATCH) {
      await inOrg(db, org, async (tx) => {
        const rows = [];
        for (let j = 0; j < BATCH && b + j < ROWS; j++) {
          const i = b + j;
          const id = ids[i]!;
          const scope = { orgId: org, subject: { type: 'customer' as const, id } };
          const c = await benchCustomers.seal(cipher, tx, scope, id, {
            name: PII.name(i),
            email: PII.email(i),
            phone: PII.phone(i),
            address: PII.address(i),
            tax_id: PII.tax_id(i),
          });
          rows.push(
            sql`(${org}, ${id}, ${c.name_enc}, ${c.email_enc}, ${c.email_bidx}, ${c.phone_enc}, ${c.address_enc}, ${c.tax_id_enc})`,
          );
        }
        await sql`INSERT INTO bench_customers_enc (org_id, id, name_enc, email_enc, email_bidx, phone_enc, address_enc, tax_id_enc)
          VALUES ${sql.join(rows)}`.execute(tx);
      });
    }
  });

  const plainRead = await timed(async () => {
    await inOrg(db, org, async (tx) => {
      const rows = await sql<Record<string, string>>`SELECT * FROM bench_customers_plain`.execute(tx);
      if (rows.rows.length !== ROWS) throw new Error('plain read count');
    });
  });

  const readAll = async (c: typeof cipher) => {
    await inOrg(db, org, async (tx) => {
      const rows = await sql<Record<string, string>>`SELECT * FROM bench_customers_enc`.execute(tx);
      if (rows.rows.length !== ROWS) throw new Error('encrypted read count');
      for (const r of rows.rows) {
        const id = r.id!;
        await benchCustomers.open(c, tx, { orgId: org, subject: { type: 'customer', id } }, id, r);
      }
    });
  };
  const encReadWarm = await timed(() => readAll(cipher));
  const encReadCold = await timed(() => readAll(createFieldCipher(kp)));

  return {
    value: encInsert / plainInsert,
    extra: {
      read_ratio_warm: encReadWarm / plainRead,
      read_ratio_cold: encReadCold / plainRead,
      plain_insert_rows_s: ROWS / plainInsert,
      enc_insert_rows_s: ROWS / encInsert,
      plain_read_rows_s: ROWS / plainRead,
      enc_read_warm_rows_s: ROWS / encReadWarm,
      enc_read_cold_rows_s: ROWS / encReadCold,
    },
  };
}

export const scenarios: Scenario[] = [
  { name: 'crypto.aes_gcm_200B_seal_open', unit: 'ops/s', run: () => primitive() },
  { name: 'crypto.field_200B_encrypt_decrypt', unit: 'ops/s', needsDb: true, run: fieldCipher },
  { name: 'crypto.customers_10k_insert_ratio', unit: 'x plain', needsDb: true, run: customers },
];
