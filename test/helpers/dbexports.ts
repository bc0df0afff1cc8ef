export { inOrg, inTransaction, migrate, migrationStatus } from '../../src/adapters/db/index.js';
export { MIGRATIONS_DIR as MIGRATIONS_DIR_FOR_TESTS } from '../../src/adapters/db/migrate.js';
