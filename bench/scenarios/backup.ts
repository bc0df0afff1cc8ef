import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { createBackup, restoreBackup, verifyBackup } from '../../src/adapters/backup/dump.js';
import { createOrg } from '../../src/app/orgs.js';
import type { BenchContext, Scenario } from '../harness.js';

const ROWS = 40_000;

/** Backup, verify and restore throughput on a database of ~50 MB of settings and audit rows. */
async function backupRestore(ctx: BenchContext) {
  const source = await ctx.freshDatabase();
  const org = (await createOrg(source.db, { name: 'Bench', baseCurrency: 'EUR' })).id;
  await sql`INSERT INTO org_settings (org_id, key, value)
    SELECT ${org}, 'bench.k' || i, jsonb_build_object('text', repeat(md5(i::text), 25), 'n', i)
    FROM generate_series(1, ${ROWS}) AS i`.execute(source.db);
  await sql`INSERT INTO audit_events (id, org_id, actor_type, actor_id, action, outcome, details)
    SELECT 'evt_' || lpad(to_hex(i), 32, '0'), ${org}, 'system', 'system', 'bench.event', 'success',
      jsonb_build_object('i', i, 'note', repeat('n', 200))
    FROM generate_series(1, ${ROWS}) AS i`.execute(source.db);
  const dir = mkdtempSync(path.join(tmpdir(), 'bv-bench-backup-'));
  const file = path.join(dir, 'bench.bvbak');
  const secret = { kind: 'key_file' as const, key: randomBytes(32) };
  try {
    let t0 = performance.now();
    const made = await createBackup(source.db, file, secret, { kind: ctx.dbKind });
    const createSecs = (performance.now() - t0) / 1000;
    const mb = made.plaintextBytes / (1024 * 1024);
    t0 = performance.now();
    await verifyBackup(file, secret);
    const verifySecs = (performance.now() - t0) / 1000;
    const target = await ctx.freshDatabase();
    t0 = performance.now();
    const restored = await restoreBackup(target.db, target.pool, file, secret);
    const restoreSecs = (performance.now() - t0) / 1000;
    return {
      value: mb / createSecs,
      extra: {
        data_mb: Number(mb.toFixed(1)),
        archive_mb: Number((made.bytesWritten / (1024 * 1024)).toFixed(1)),
        rows: restored.rowsWritten,
        verify_mb_s: mb / verifySecs,
        restore_mb_s: mb / restoreSecs,
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const scenarios: Scenario[] = [
  { name: 'backup.create_verify_restore', unit: 'MB/s create', needsDb: true, run: backupRestore },
];
