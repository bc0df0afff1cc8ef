import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);

describe('supply chain', () => {
  it('npm run sbom writes a CycloneDX SBOM of the production dependencies', async () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> };
    const script = pkg.scripts.sbom;
    assert.ok(script, 'package.json has an sbom script');
    const args = script.split(/\s+/);
    assert.equal(args[0], 'cyclonedx-npm');
    assert.ok(script.includes('--omit dev'), 'dev dependencies are left out');
    const dir = mkdtempSync(path.join(tmpdir(), 'bv-sbom-'));
    try {
      const out = path.join(dir, 'bom.json');
      const i = args.indexOf('--output-file');
      args[i + 1] = out; // same command, written outside the repository
      await run(path.resolve('node_modules/.bin/cyclonedx-npm'), args.slice(1), { timeout: 120_000 });
      const bom = JSON.parse(readFileSync(out, 'utf8')) as {
        bomFormat: string;
        specVersion: string;
        metadata: { component: { name: string } };
        components: { name: string; purl?: string }[];
      };
      assert.equal(bom.bomFormat, 'CycloneDX');
      assert.equal(bom.metadata.component.name, 'billvault');
      const names = new Set(bom.components.map((c) => c.name));
      for (const dep of ['pg', 'fastify', 'kysely', 'argon2']) assert.ok(names.has(dep), `SBOM lists ${dep}`);
      for (const dev of ['typescript', 'fast-check', 'autocannon'])
        assert.ok(!names.has(dev), `SBOM omits dev ${dev}`);
      assert.ok(bom.components.every((c) => c.purl?.startsWith('pkg:npm/')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
