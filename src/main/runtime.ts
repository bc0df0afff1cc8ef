import pino from 'pino';
import { type Database, migrate, migrationStatus, openDatabase } from '../adapters/db/index.js';
import { createLogger, type Logger } from '../adapters/log/logger.js';
import { configureBatching } from '../app/tx-batch.js';
import type { Config } from '../config/config.js';

/** The process-wide parts every entry point needs: config, logger, database. */
export interface Runtime {
  config: Config;
  logger: Logger;
  database: Database;
  /** Migrations this start applied. */
  applied: string[];
  close(): Promise<void>;
}

/** Opens the configured database (starting the embedded server if needed), optionally migrating it. */
export async function openRuntime(
  config: Config,
  opts: {
    migrate: boolean;
    logger?: Logger;
    /** A `serve --workers` worker: the embedded server its primary process started. */
    sharedEmbeddedUrl?: string | undefined;
  },
): Promise<Runtime> {
  // Commands other than serve keep stdout for their own output (--json): logs go to stderr.
  const logger = opts.logger ?? createLogger(config.logLevel, pino.destination(2));
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    sharedEmbeddedUrl: opts.sharedEmbeddedUrl,
    dataDir: config.dataDir,
    poolSize: config.dbPoolSize,
    embeddedNice: config.embeddedNice,
    log: (line) => logger.debug({ component: 'embedded-postgres' }, line),
  });
  configureBatching(database.db, config.txBatch);
  let applied: string[] = [];
  try {
    if (opts.migrate) {
      applied = await migrate(database.pool);
      if (applied.length > 0) logger.info({ applied }, 'migrations applied');
    } else {
      const status = await migrationStatus(database.pool);
      if (status.pending.length > 0)
        logger.warn({ pending: status.pending }, 'schema is not current: run billvault migrate');
    }
  } catch (e) {
    await database.close();
    throw e;
  }
  return { config, logger, database, applied, close: () => database.close() };
}
