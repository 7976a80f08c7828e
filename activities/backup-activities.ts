import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import client from 'prom-client';
import type { Db } from '../core/db';
import { databaseCredentials, primaryUrl } from '../core/db-leader';
import type { ObjectStore } from '../core/object-store';
import { backupRepo, listRepoDirs, repoDir, repoState } from '../core/backup-repos';
import { restoreToDir } from '../core/backup-restore';
import { basebackup, startThrowawayPostgres, throwawayDatabase } from '../core/backup-postgres';
import { combineNodeParts, listManifests, planRetention, readManifest, storeInventory, writeManifest } from '../core/backup-manifest';
import { BACKUP_PREFIX, repoPartKey, WAL_PREFIX, walPrefixOf, type BackupManifest, type BackupResult, type BackupTrigger, type PostgresBackupEntry, type RepoBackupEntry, type RestoreResult } from '../core/backup-types';
import { runGit } from '../core/git';
import {
  completeBackup,
  completeRestore,
  countTenantsCreatedBefore,
  deleteBackups,
  failRestore,
  failRunningBackup,
  finishDrill,
  startBackupRecord,
  startRestoreRecord,
} from '../core/stores/backups-store';
import { appliedMigrationNames } from '../core/stores/server-store';
import { nodesHoldingRepos, reposOwnedHere, reposPlacedOn } from '../core/storage-nodes';
import { nodesHoldingReposEverywhere, reposOwnedHereEverywhere, reposPlacedOnEverywhere } from '../core/platform-listings';
import { GLOBAL_DATABASE } from '../core/shard-map';
import type { ShardRouter } from '../core/shard-router';

const drillFailures = new client.Counter({ name: 'dotgit_backup_drill_failures_total', help: 'Restore drills that failed (the latest backup did not restore, or differed from live data)' });
const lastBackup = new client.Gauge({ name: 'dotgit_backup_last_complete_timestamp_seconds', help: 'When the newest complete backup finished' });

export interface BackupDeps {
  /** The global database: backup and restore records. */
  db: Db;
  /** Every database of the shard map (ADR 0025): the repository listings read them all. Absent: `db` holds every repository. */
  router?: ShardRouter;
  store: ObjectStore;
  reposDir: string;
  /** Where restores and drills put their copies (`<dir>/<id>/repos`, `<dir>/<id>/postgres`). */
  restoresDir: string;
  /** The live database; its Postgres is backed up only when `pgToolsDir` is set (our embedded one). */
  databaseUrl: string;
  pgToolsDir?: string;
  /** The live cluster's directory (embedded Postgres), for WAL not archived yet. */
  pgDataDir?: string;
  retentionDays: number;
  fullEveryHours: number;
  /** The storage node whose disk `reposDir` is, on a `storage` worker (its queue runs the per-node parts). */
  nodeId?: string;
  now?: () => Date;
}

/** What a complete backup that some storage nodes missed says in its `error` (the manifest lists them all). */
function missedMessage(nodes: string[]): string {
  const named = nodes.length > 10 ? `${nodes.slice(0, 10).join(', ')} and ${nodes.length - 10} more` : nodes.join(', ');
  return `storage nodes ${named} missed this backup: their repositories are carried over from the previous one`;
}

/** Keeps a long activity alive (and cancellable) while it works; the worker dying stops the beats. */
async function withHeartbeat<T>(fn: (beat: (detail?: unknown) => void) => Promise<T>): Promise<T> {
  const ctx = Context.current();
  const timer = setInterval(() => ctx.heartbeat(), 5_000);
  try {
    return await fn((d) => ctx.heartbeat(d));
  } finally {
    clearInterval(timer);
  }
}

/** Activities of backups, restores, retention and drills. Each is safe to retry: keys are per backup id. */
export function createBackupActivities(deps: BackupDeps) {
  const { db, store } = deps;
  const now = deps.now ?? (() => new Date());
  const olderThan = (iso: string, hours: number) => now().getTime() - Date.parse(iso) > hours * 3_600_000;
  const { router } = deps;
  const ownedHere = (node: string, names: string[]) => (router ? reposOwnedHereEverywhere(router, node, names) : reposOwnedHere(db, node, names));

  const restoreInto = (dir: string, at: Date, opts: { repos?: string[]; postgres?: boolean }) =>
    withHeartbeat((beat) =>
      restoreToDir({
        store,
        dir,
        at,
        ...opts,
        databaseUrl: deps.databaseUrl,
        pgDataDir: deps.pgDataDir,
        // The shard map's other databases, whose current WAL is archived first where they archive (ADR 0043).
        databaseUrls: Object.fromEntries((router?.databases() ?? []).filter((d) => d.name !== GLOBAL_DATABASE).map((d) => [d.name, d.url])),
        beat,
      }),
    );

  /** Problems of `names` in `manifest` whose recorded tips the live repository here lacks (deleted ones are skipped). */
  async function tipsUnknownToLive(manifest: BackupManifest, names: string[]): Promise<string[]> {
    const problems: string[] = [];
    for (const name of names) {
      const live = repoDir(deps.reposDir, name);
      if (!(await fs.stat(live).then(() => true, () => false))) continue; // deleted since
      for (const sha of new Set(Object.values(manifest.repos[name].refs))) {
        if ((await runGit(['--git-dir', live, 'cat-file', '-e', sha])).code !== 0) problems.push(`${name}: restored ${sha} is unknown to the live repository`);
      }
    }
    return problems;
  }

  return {
    async startBackupRecord(args: { id: string; trigger: BackupTrigger }): Promise<void> {
      await startBackupRecord(db, args.id, args.trigger);
    },

    /**
     * Bundles every repository that changed since the newest complete backup (a base when it has
     * none yet, when `full`, or when its base is older than the full-backup interval). The entries
     * go to a part file, not into history: thousands of repositories would not fit an event.
     * With `node` (on that node's storage queue, ADR 0014): only the repositories on this worker's
     * disk that are that node's own (reposOwnedHere), into the node's part file.
     */
    async backupRepositories(args: { id: string; full: boolean; node?: string }): Promise<{ repos: number; changed: number }> {
      if (args.node !== undefined && args.node !== deps.nodeId) {
        // A worker polling another node's queue would back up the wrong disk under that node's name.
        throw ApplicationFailure.nonRetryable(`this worker is storage node ${deps.nodeId ?? '(none)'}, not ${args.node}`, 'WrongNodeError');
      }
      const previous = (await listManifests(store)).at(-1);
      const onDisk = await listRepoDirs(deps.reposDir);
      const names = args.node ? await ownedHere(args.node, onDisk) : onDisk;
      const entries: Record<string, RepoBackupEntry> = {};
      let changed = 0;
      await withHeartbeat(async (beat) => {
        for (const name of names) {
          const prev = previous?.repos[name];
          const entry = await backupRepo({ store, reposDir: deps.reposDir, fullName: name, backupId: args.id, previous: prev, base: args.full || (!!prev && olderThan(prev.baseAt, deps.fullEveryHours)), now });
          if (entry.kind !== 'unchanged') changed++;
          entries[name] = args.node ? { ...entry, node: args.node } : entry;
          beat(name);
        }
      });
      await store.put(repoPartKey(args.id, args.node), Buffer.from(JSON.stringify(entries)));
      return { repos: names.length, changed };
    },

    /** The storage nodes a backup, drill or reconciliation walks (empty: the orchestration worker's disk, as before nodes). */
    async listBackupNodes(): Promise<{ up: string[]; down: string[] }> {
      return router ? nodesHoldingReposEverywhere(router) : nodesHoldingRepos(db);
    },

    /** A Postgres base backup when due; otherwise the newest one stays the base (WAL covers the rest). */
    async backupPostgres(args: { id: string; full: boolean }): Promise<PostgresBackupEntry | null> {
      if (!deps.pgToolsDir) return null;
      const prev = (await listManifests(store)).at(-1)?.postgres;
      if (prev && !args.full && !olderThan(prev.finishedAt, deps.fullEveryHours)) return prev;
      // From the primary (a multi-host URL under Patroni names every member): the archive it feeds is the one a restore replays.
      const databaseUrl = await primaryUrl(deps.databaseUrl);
      return withHeartbeat(async () => {
        const entry = await basebackup({ store, pgToolsDir: deps.pgToolsDir!, databaseUrl, backupId: args.id, now });
        // Every other database of the shard map (ADR 0025): a base backup each, named by the map.
        const others = (router?.databases() ?? []).filter((d) => d.name !== GLOBAL_DATABASE);
        if (others.length === 0) return entry;
        const databases: Record<string, PostgresBackupEntry> = {};
        for (const d of others) databases[d.name] = await basebackup({ store, pgToolsDir: deps.pgToolsDir!, databaseUrl: await primaryUrl(d.url), backupId: args.id, now, database: d.name });
        return { ...entry, databases };
      });
    },

    /**
     * Writes the manifest (last: only now is the backup complete), then marks the row complete.
     * With `nodes` (a backup taken per storage node), the manifest combines their parts, and
     * carries over the previous entries of the repositories on `missedNodes` (combineNodeParts).
     */
    async completeBackup(args: {
      id: string;
      startedAt: string;
      postgres: PostgresBackupEntry | null;
      repos: number;
      changed: number;
      nodes?: string[];
      missedNodes?: string[];
    }): Promise<BackupResult> {
      const readPart = async (node?: string) => JSON.parse((await store.getBuffer(repoPartKey(args.id, node))).toString('utf8')) as Record<string, RepoBackupEntry>;
      let repos: Record<string, RepoBackupEntry>;
      let count = args.repos;
      const missedNodes = args.missedNodes?.length ? args.missedNodes : undefined;
      if (args.nodes) {
        const parts = await Promise.all(args.nodes.map(async (node) => ({ node, entries: await readPart(node) })));
        const missed = !missedNodes ? new Map<string, string>() : router ? await reposPlacedOnEverywhere(router, missedNodes) : await reposPlacedOn(db, missedNodes);
        repos = combineNodeParts({ parts, missed, previous: missed.size ? (await listManifests(store)).at(-1) : undefined });
        count = Object.keys(repos).length;
      } else {
        repos = await readPart();
      }
      const finishedAt = now().toISOString();
      const manifest: BackupManifest = { version: 1, id: args.id, startedAt: args.startedAt, finishedAt, repos, ...(args.postgres ? { postgres: args.postgres } : {}), ...(missedNodes ? { missedNodes } : {}) };
      await writeManifest(store, manifest);
      const postgresBase = args.postgres?.baseBackupId === args.id;
      await completeBackup(db, { id: args.id, finishedAt, repos: count, changed: args.changed, postgresBase, error: missedNodes ? missedMessage(missedNodes) : null });
      lastBackup.set(Date.parse(finishedAt) / 1000);
      const postgresDatabases = args.postgres ? [GLOBAL_DATABASE, ...Object.keys(args.postgres.databases ?? {})] : undefined;
      return { id: args.id, repos: count, changed: args.changed, postgresBase, ...(postgresDatabases ? { postgresDatabases } : {}), ...(missedNodes ? { missedNodes } : {}) };
    },

    async failBackup(args: { id: string; error: string }): Promise<void> {
      await failRunningBackup(db, args.id, args.error.slice(0, 2000));
    },

    /**
     * Removes backups and WAL older than the retention window, except what a kept backup still
     * needs (see planRetention). Rows of removed backups go too.
     */
    async applyRetention(): Promise<{ backups: string[]; walFiles: number }> {
      const cutoff = new Date(now().getTime() - deps.retentionDays * 86_400_000);
      const [manifests, inv] = await Promise.all([listManifests(store), storeInventory(store)]);
      // The shard map's other databases that archive WAL into the store (`wal@<name>/`, ADR 0043), by the names backups recorded.
      const names = [...new Set(manifests.flatMap((m) => Object.keys(m.postgres?.databases ?? {})))];
      const databaseWalFiles = Object.fromEntries(await Promise.all(names.map(async (n) => [n, (await store.list(walPrefixOf(n))).map((k) => k.slice(walPrefixOf(n).length + 1))] as const)));
      const plan = planRetention({ manifests, folders: inv.folders, walFiles: inv.walFiles, cutoff, databaseWalFiles });
      for (const id of plan.backups) {
        // Manifest first: a half-removed backup must never look complete.
        await store.delete(`${BACKUP_PREFIX}/${id}/manifest.json`);
        for (const key of await store.list(`${BACKUP_PREFIX}/${id}`)) await store.delete(key);
      }
      for (const f of plan.wal) await store.delete(`${WAL_PREFIX}/${f}`);
      for (const [n, files] of Object.entries(plan.databaseWal)) for (const f of files) await store.delete(`${walPrefixOf(n)}/${f}`);
      if (plan.backups.length) await deleteBackups(db, plan.backups);
      return { backups: plan.backups, walFiles: plan.wal.length + Object.values(plan.databaseWal).reduce((n, f) => n + f.length, 0) };
    },

    async startRestoreRecord(args: { id: string; kind: 'restore' | 'drill'; at: string }): Promise<void> {
      await startRestoreRecord(db, args.id, args.kind, args.at);
    },

    /** Restores repositories (all or some) and Postgres to `at` into `<restoresDir>/<id>/`. */
    async restoreTo(args: { id: string; at: string; repos?: string[]; postgres?: boolean }): Promise<RestoreResult> {
      const dir = path.join(deps.restoresDir, args.id);
      const r = await restoreInto(dir, new Date(args.at), { repos: args.repos, postgres: args.postgres });
      await completeRestore(db, args.id, r.manifest.id, dir);
      return { id: args.id, dir, backupId: r.manifest.id, repos: r.repos, postgres: r.postgres };
    },

    async failRestore(args: { id: string; problems: string[] }): Promise<void> {
      await failRestore(db, args.id, args.problems);
      if (args.id.startsWith('drill-')) drillFailures.inc();
    },

    /**
     * The drill's check: the newest backup restored into the scratch area must match what it
     * recorded and be a past state of the live data. Repositories: refs as recorded, fsck clean,
     * every restored tip known to the live repository. Postgres: starts, and holds the same
     * tenants created up to the backup, and no migration live does not know. With `liveOnNodes`
     * the comparison with the live repositories is left to their nodes (checkLiveRepos).
     */
    async compareWithLive(args: { id: string; liveOnNodes?: boolean }): Promise<{ problems: string[]; backupId: string }> {
      const dir = path.join(deps.restoresDir, args.id);
      const problems: string[] = [];
      const manifest = (await listManifests(store)).at(-1);
      if (!manifest) return { problems: ['there is no complete backup'], backupId: '' };
      const r = await restoreInto(dir, new Date(manifest.finishedAt), {}).catch((err: Error) => {
        problems.push(`restore failed: ${err.message}`);
        return undefined;
      });
      if (!r) return { problems, backupId: manifest.id };
      for (const [name, entry] of Object.entries(manifest.repos)) {
        const restored = await repoState(repoDir(path.join(dir, 'repos'), name));
        if (JSON.stringify(restored.refs) !== JSON.stringify(Object.fromEntries(Object.entries(entry.refs).sort()))) problems.push(`${name}: restored refs differ from the backup's`);
      }
      if (!args.liveOnNodes) problems.push(...(await tipsUnknownToLive(manifest, Object.keys(manifest.repos))));
      if (r.postgres) {
        const { user, password, database } = databaseCredentials(deps.databaseUrl);
        const server = await startThrowawayPostgres({ dataDir: path.join(dir, 'postgres'), user, password });
        try {
          // created_at is a transaction's start: one that began just before the backup may commit after it.
          const restoredDb = throwawayDatabase(server, database);
          const restored = await countTenantsCreatedBefore(restoredDb, manifest.finishedAt);
          const live = await countTenantsCreatedBefore(db, manifest.finishedAt);
          if (restored !== live) problems.push(`postgres: ${restored} tenants restored, live has ${live} created up to the backup`);
          const migrations = await appliedMigrationNames(restoredDb);
          const liveMigrations = new Set(await appliedMigrationNames(db));
          for (const m of migrations) if (!liveMigrations.has(m)) problems.push(`postgres: restored migration ${m} is unknown to live`);
        } finally {
          await server.stop();
        }
      }
      return { problems, backupId: manifest.id };
    },

    /**
     * The drill's comparison with live data on one storage node (its queue): every tip backup
     * `backupId` recorded for a repository that is this node's own now must be known to the live
     * repository here (one moved here since is compared here).
     */
    async checkLiveRepos(args: { backupId: string; node: string }): Promise<{ problems: string[] }> {
      if (args.node !== deps.nodeId) throw ApplicationFailure.nonRetryable(`this worker is storage node ${deps.nodeId ?? '(none)'}, not ${args.node}`, 'WrongNodeError');
      const manifest = await readManifest(store, args.backupId);
      const here = await ownedHere(args.node, Object.keys(manifest.repos));
      return { problems: await tipsUnknownToLive(manifest, here) };
    },

    /** Records a drill's outcome; a failed drill counts in `dotgit_backup_drill_failures_total`. */
    async finishDrill(args: { id: string; backupId: string; problems: string[] }): Promise<void> {
      const ok = args.problems.length === 0;
      await finishDrill(db, args.id, ok, args.backupId || null, args.problems);
      if (!ok) drillFailures.inc();
      // The scratch copy has served its purpose; a failed one stays for inspection.
      if (ok) await fs.rm(path.join(deps.restoresDir, args.id), { recursive: true, force: true });
    },
  };
}

export type BackupActivities = ReturnType<typeof createBackupActivities>;
