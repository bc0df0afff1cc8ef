import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ErasureLog, ErasureTombstone } from '../../app/privacy.js';

const ID = /^[a-z]{2,4}_[0-9a-z]{32}$/;

/**
 * The erasure log: one JSON line per erasure (org id, customer id, time; never PII), appended
 * and fsynced before the erasure commits. It lives outside the database and outside the data
 * dir (default: next to it, `<data dir>-erasures.jsonl`), so restoring a backup taken before an
 * erasure, or moving the data dir aside, leaves it in place: `billvault backup restore` applies
 * every erasure it lists again.
 */
export function fileErasureLog(file: string): ErasureLog & { file: string } {
  return {
    file,
    async record(t: ErasureTombstone) {
      if (!ID.test(t.org_id) || !ID.test(t.customer_id)) throw new Error('erasure log: malformed id');
      const fh = await open(file, 'a', 0o600);
      try {
        await fh.write(
          `${JSON.stringify({ org_id: t.org_id, customer_id: t.customer_id, erased_at: t.erased_at })}\n`,
        );
        await fh.sync();
      } finally {
        await fh.close();
      }
    },
    async list() {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw e;
      }
      const out: ErasureTombstone[] = [];
      for (const line of text.split('\n')) {
        if (!line.trim()) continue;
        try {
          const v = JSON.parse(line) as ErasureTombstone;
          if (ID.test(v.org_id) && ID.test(v.customer_id) && typeof v.erased_at === 'string') out.push(v);
        } catch {
          // a torn last line (crash while appending) is skipped; every complete line counts
        }
      }
      return out;
    },
  };
}

/** Where the erasure log lives by default: beside the data dir, not inside it. */
export function defaultErasureLogPath(dataDir: string): string {
  return path.join(path.dirname(dataDir), `${path.basename(dataDir)}-erasures.jsonl`);
}
