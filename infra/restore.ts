import { existsSync, promises as fs, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { dataPaths, loadConfig } from '../core/config';
import { backupStore } from '../core/backup-store';
import { restoreToDir } from '../core/backup-restore';
import { listRepoDirs, repoDir } from '../core/backup-repos';
import { assertValidName } from '../core/names';

/**
 * `npm run restore -- --at <ISO time> [--repos owner/name,…] [--node <id>] [--no-postgres]`, or
 * `npm run restore -- --from <restore id>` (a copy the restore workflow already made): switches
 * the stopped platform to the state at that time. Restores from the object store into
 * `.data/restores/<id>/`, then moves the live Postgres cluster and repositories aside
 * (`*.before-<id>`) and the restored ones into place. Refuses while any part of the platform runs:
 * swapping a live cluster under its server would corrupt it.
 *
 * It swaps one data directory. A fleet restores host by host, each storage node's host with its
 * own DOTGIT_DATA_DIR and DOTGIT_NODE_ID (or `--node`): only the repositories the backup recorded
 * for that node (and those it recorded none for, from before nodes) go there, so every repository
 * returns to the node that held it, which is the node the restored Postgres places it on (ADR 0014).
 */
async function main(): Promise<void> {
  const { values } = parseArgs({ options: { at: { type: 'string' }, from: { type: 'string' }, repos: { type: 'string' }, node: { type: 'string' }, 'no-postgres': { type: 'boolean' } } });
  const config = loadConfig();
  const paths = dataPaths(config);
  assertStopped(config.dataDir, paths.postgres);
  const repos = values.repos?.split(',').map((r) => {
    const [owner, name, extra] = r.split('/');
    if (extra !== undefined || !name) throw new Error(`--repos: ${JSON.stringify(r)} is not owner/name`);
    return `${assertValidName('owner', owner)}/${assertValidName('repo', name)}`;
  });
  // This host's storage node: its share of the backup only (unset on a single node: everything, as before nodes).
  const node = values.node ?? config.nodeId;
  if (node !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(node)) throw new Error(`--node: ${JSON.stringify(node.slice(0, 100))} is not a storage node id`);
  // Postgres is ours to swap only when it is the embedded one.
  const postgres = !values['no-postgres'] && !config.databaseUrl;

  let id: string;
  if (values.from) {
    id = values.from;
    if (!/^restore-[0-9A-Za-z-]+$/.test(id) || !existsSync(path.join(paths.restores, id))) throw new Error(`--from: no restored copy ${id} in ${paths.restores}`);
  } else {
    if (!values.at || Number.isNaN(Date.parse(values.at))) throw new Error('usage: npm run restore -- --at <ISO 8601 time> [--repos owner/name,…] [--node <id>] [--no-postgres] | --from <restore id>');
    const at = new Date(values.at);
    id = `restore-offline-${new Date().toISOString().replace(/[-:.]/g, '')}`;
    console.log(`restoring the state at ${at.toISOString()}${node ? ` of storage node ${node}` : ''} into ${path.join(paths.restores, id)}`);
    // The embedded cluster's credentials (infra/provision/postgres.ts); the server is down, so no WAL flush.
    const r = await restoreToDir({ store: backupStore(config), dir: path.join(paths.restores, id), at, repos, node, postgres, databaseUrl: 'postgres://postgres:postgres@127.0.0.1:1/dotgit', pgDataDir: paths.postgres });
    console.log(`restored ${r.repos} repositories${r.postgres ? ' and Postgres' : ''} from backup ${r.manifest.id}`);
  }
  await swap({ restored: path.join(paths.restores, id), reposDir: paths.repos, pgDir: paths.postgres, suffix: `before-${id}`, postgres, onlyRepos: repos });
  console.log('done: start the platform again with npm start');
}

/** Throws when a service, or the embedded Postgres, still runs on this data directory. */
export function assertStopped(dataDir: string, pgDir: string): void {
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  };
  const running: string[] = [];
  const pidFile = path.join(pgDir, 'postmaster.pid');
  const pgPid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').split('\n')[0]) || 0 : 0;
  if (pgPid && alive(pgPid)) running.push(`postgres (pid ${pgPid})`);
  const runDir = path.join(dataDir, 'run');
  for (const f of existsSync(runDir) ? readdirSync(runDir) : []) {
    try {
      const pid = (JSON.parse(readFileSync(path.join(runDir, f), 'utf8')) as { pid: number }).pid;
      if (pid && alive(pid)) running.push(`${f.replace(/\.pid$/, '')} (pid ${pid})`);
    } catch {
      // not a pid file of ours
    }
  }
  if (running.length) throw new Error(`the platform is running (${running.join(', ')}): stop npm start first`);
}

/**
 * Moves the live parts aside and the restored ones into place. Without `onlyRepos`, repositories
 * the restored state does not have (created later) are moved aside too: the state is the whole state.
 */
export async function swap(o: { restored: string; reposDir: string; pgDir: string; suffix: string; postgres: boolean; onlyRepos?: string[] }): Promise<void> {
  const aside = `${o.reposDir}.${o.suffix}`;
  const restoredRepos = path.join(o.restored, 'repos');
  const names = await listRepoDirs(restoredRepos);
  const live = await listRepoDirs(o.reposDir);
  const moveAside = o.onlyRepos ? names : [...new Set([...names, ...live])];
  for (const name of moveAside) {
    if (!existsSync(repoDir(o.reposDir, name))) continue;
    await fs.mkdir(path.dirname(repoDir(aside, name)), { recursive: true });
    await fs.rename(repoDir(o.reposDir, name), repoDir(aside, name));
  }
  for (const name of names) {
    await fs.mkdir(path.dirname(repoDir(o.reposDir, name)), { recursive: true });
    await fs.rename(repoDir(restoredRepos, name), repoDir(o.reposDir, name));
  }
  if (o.postgres && existsSync(path.join(o.restored, 'postgres'))) {
    if (existsSync(o.pgDir)) await fs.rename(o.pgDir, `${o.pgDir}.${o.suffix}`);
    await fs.rename(path.join(o.restored, 'postgres'), o.pgDir);
  }
  console.log(`previous data kept in ${aside}${o.postgres ? ` and ${o.pgDir}.${o.suffix}` : ''}`);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(`restore: ${(err as Error).message}`);
    process.exit(1);
  });
}
