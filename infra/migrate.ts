import { loadConfig } from '../core/config';
import { createDb } from '../core/db';
import { ContractRefusedError, migrate } from '../core/migrate';

/**
 * `node --import tsx infra/migrate.ts` (DATABASE_URL set): applies pending migrations to a running
 * platform's database, for deploys where processes start on several hosts rather than through
 * `npm start` (which migrates before it starts anything). Expands run at once; a contract that
 * older processes still block is refused with their names (exit code 2), and is run again after
 * they are gone (docs/migrations.md).
 */
async function main(): Promise<number> {
  const config = loadConfig();
  if (!config.databaseUrl) throw new Error('migrate needs DATABASE_URL');
  const db = createDb(config.databaseUrl, 1);
  try {
    const applied = await migrate(db, undefined, { staleSeconds: config.schemaClientStaleSeconds });
    console.log(applied.length ? `applied: ${applied.join(', ')}` : 'up to date');
    return 0;
  } catch (err) {
    if (!(err instanceof ContractRefusedError)) throw err;
    console.error(err.message);
    return 2;
  } finally {
    await db.end();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
