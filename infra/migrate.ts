import { loadConfig } from '../core/config';
import { ContractRefusedError } from '../core/migrate';
import { migrateAllDatabases } from '../core/shard-databases';
import { resolveShardMap } from '../core/shard-map';
import { createShardRouter } from '../core/shard-router';

/**
 * `node --import tsx infra/migrate.ts` (DATABASE_URL set, and DOTGIT_SHARD_MAP when shards live on
 * several databases): applies pending migrations to a running platform's databases, every database
 * of the shard map (ADR 0025), for deploys where processes start on several hosts rather than
 * through `npm start` (which migrates before it starts anything). Expands run at once; a contract
 * that older processes still block is refused with their names (exit code 2), and is run again
 * after they are gone (docs/migrations.md).
 */
/** `--phase=expand`: only the expands before the first contract (Helm's pre-upgrade hook); `--phase=contract` (default): everything pending. */
function phaseArg(): 'expand' | 'contract' {
  const arg = process.argv.slice(2).find((a) => a.startsWith('--phase='));
  const phase = arg?.slice('--phase='.length) ?? 'contract';
  if (phase !== 'expand' && phase !== 'contract') throw new Error(`--phase must be expand or contract, not "${phase}"`);
  return phase;
}

async function main(): Promise<number> {
  const config = loadConfig();
  if (!config.databaseUrl) throw new Error('migrate needs DATABASE_URL');
  const router = await createShardRouter(config, { max: 1 });
  try {
    const applied = await migrateAllDatabases(router, resolveShardMap(config.shardMap, config.databaseUrl), undefined, { staleSeconds: config.schemaClientStaleSeconds, expandOnly: phaseArg() === 'expand' });
    const lines = Object.entries(applied).filter(([, files]) => files.length).map(([name, files]) => `applied on ${name}: ${files.join(', ')}`);
    console.log(lines.length ? lines.join('\n') : 'up to date');
    return 0;
  } catch (err) {
    if (!(err instanceof ContractRefusedError)) throw err;
    console.error(err.message);
    return 2;
  } finally {
    await router.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
