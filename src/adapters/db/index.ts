export {
  closeConnection,
  connect,
  type Database,
  type Db,
  describeUrl,
  onClient,
  openDatabase,
  PREPARED,
  poolOf,
  SCOPE,
  THEN_COMMIT,
} from './database.js';
export { DatabaseStartError, ensureDatabase, startEmbeddedPostgres } from './embedded.js';
export { MigrationError, migrate, migrationStatus } from './migrate.js';
export type { DB } from './schema.js';
export {
  APP_ROLE,
  type DbOrTx,
  inOrg,
  inTransaction,
  isRetryable,
  noteTxOrgScope,
  type Tx,
  txOrgScope,
} from './tx.js';
