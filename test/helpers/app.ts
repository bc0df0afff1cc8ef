import type { FastifyRequest } from 'fastify';
import { migrationStatus } from '../../src/adapters/db/index.js';
import { type AppDeps, buildApp } from '../../src/http/app.js';
import type { TestDatabase } from './db.js';

/** The real HTTP app on a test database; deps may be overridden (e.g. an authenticator). */
export async function buildTestApp(t: TestDatabase, overrides: Partial<AppDeps> = {}) {
  const app = await buildApp({
    db: t.db,
    readiness: async () => {
      const s = await migrationStatus(t.pool);
      return { database: true, migrations: s.pending.length === 0 ? 'current' : 'pending' };
    },
    ...overrides,
  });
  await app.ready();
  return app;
}

export type { FastifyRequest };
