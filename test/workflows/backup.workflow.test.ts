import path from 'node:path';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startWorkflowTestEnv } from '../helpers/workflow-env';
import { ApplicationFailure } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { AlertActivities } from '../../activities/alert-activities';
import type { BackupActivities } from '../../activities/backup-activities';
import type { PostgresBackupEntry } from '../../core/backup-types';
import { ORCHESTRATION_QUEUE, storageQueue } from '../../core/run-types';
import { ROOT } from '../../infra/root';

// The backup and drill workflows' logic against a real Temporal dev server with recording fake
// activities: the manifest is written only after every part, a failed part marks the backup
// failed and writes no manifest, a failed drill is recorded. The recorded backup history is
// replayed against the current code (as the pipeline's are), so changes stay deterministic.

const WORKFLOWS = path.join(ROOT, 'workflows', 'index.ts');
const HISTORY_FILE = path.join(__dirname, 'histories', 'backup-v1.json');
let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await startWorkflowTestEnv();
}, 120_000);

afterAll(async () => {
  await env?.teardown();
});

const pgEntry: PostgresBackupEntry = { baseBackupId: 'b1', baseKey: 'backups/b1/postgres/base.tar.gz', walKey: 'backups/b1/postgres/pg_wal.tar.gz', startWal: '000000010000000000000002', finishedAt: '2024-01-01T00:00:00.000Z' };

function fakes(calls: string[], o: { failRepos?: boolean; drillProblems?: string[] } = {}): BackupActivities {
  const fake: Partial<BackupActivities> = {
    startBackupRecord: async (a) => void calls.push(`start ${a.trigger}`),
    // No repository placed on a storage node: the orchestration worker's disk, as before nodes.
    listBackupNodes: async () => ({ up: [], down: [] }),
    backupRepositories: async (a) => {
      calls.push(`repos full=${a.full}`);
      if (o.failRepos) throw ApplicationFailure.nonRetryable('disk full', 'RepoBackupError');
      return { repos: 3, changed: 2 };
    },
    backupPostgres: async () => (calls.push('postgres'), pgEntry),
    completeBackup: async (a) => (calls.push(`manifest ${a.repos}/${a.changed} pg=${a.postgres?.baseBackupId}`), { id: a.id, repos: a.repos, changed: a.changed, postgresBase: false }),
    failBackup: async (a) => void calls.push(`failed: ${a.error}`),
    applyRetention: async () => (calls.push('retention'), { backups: [], walFiles: 0 }),
    startRestoreRecord: async (a) => void calls.push(`record ${a.kind}`),
    compareWithLive: async () => (calls.push('compare'), { problems: o.drillProblems ?? [], backupId: 'b9' }),
    finishDrill: async (a) => void calls.push(`drill ${a.problems.length ? 'failed' : 'ok'}`),
    restoreTo: async (a) => {
      calls.push(`restore ${a.id} at=${a.at} repos=${a.repos?.join(',') ?? 'all'} postgres=${a.postgres}`);
      if (o.failRepos) throw ApplicationFailure.nonRetryable('no backup covers that time', 'RestoreError');
      return { id: a.id, dir: `/restores/${a.id}`, backupId: 'b9', repos: a.repos?.length ?? 3, postgres: a.postgres !== false };
    },
    failRestore: async (a) => void calls.push(`restore failed: ${a.problems.join('; ')}`),
  };
  const alerts: AlertActivities = {
    sendAlert: async (a) => (calls.push(`alert ${a.event}: ${(a.detail.problems as string[]).join('; ')}`), { sent: true, status: 200 }),
  };
  return { ...fake, ...alerts } as BackupActivities;
}

async function run<T>(type: string, args: unknown[], activities: BackupActivities, workflowId: string) {
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities });
  const handle = await env.client.workflow.start(type, { workflowId, taskQueue: ORCHESTRATION_QUEUE, args });
  const result = await worker.runUntil(handle.result().then((r) => ({ ok: true as const, r: r as T }), (err: Error) => ({ ok: false as const, err })));
  return { result, handle };
}

test('a backup writes its manifest only after every part, then applies retention; a history is recorded', async () => {
  const calls: string[] = [];
  const { result, handle } = await run('backup', [{ id: 'backup-20240101T000000000Z-test', trigger: 'api', full: true }], fakes(calls), 'wf-backup');
  expect(result).toEqual({ ok: true, r: { id: 'backup-20240101T000000000Z-test', repos: 3, changed: 2, postgresBase: false } });
  expect(calls).toEqual(['start api', 'repos full=true', 'postgres', 'manifest 3/2 pg=b1', 'retention']);
  if (process.env.DOTGIT_RECORD_HISTORY === '1' || !existsSync(HISTORY_FILE)) {
    await fs.writeFile(HISTORY_FILE, historyToJSON(await handle.fetchHistory()));
  }
});

test('a backup whose part fails is marked failed and never gets a manifest', async () => {
  const calls: string[] = [];
  const { result } = await run('backup', [{ trigger: 'schedule' }], fakes(calls, { failRepos: true }), 'wf-backup-fail');
  expect(result.ok).toBe(false);
  expect(calls).toEqual(['start schedule', 'repos full=false', 'failed: disk full']);
});

test('a drill with problems is recorded as failed and says why', async () => {
  const calls: string[] = [];
  const { result } = await run('restoreDrill', [], fakes(calls, { drillProblems: ['acme/web: restored refs differ'] }), 'wf-drill');
  expect(result).toEqual({ ok: true, r: { ok: false, backupId: 'b9', problems: ['acme/web: restored refs differ'] } });
  expect(calls).toEqual(['record drill', 'compare', 'drill failed', 'alert restore_drill.failed: acme/web: restored refs differ']);
});

const RESTORE_HISTORY_FILE = path.join(__dirname, 'histories', 'restore-v1.json');

test('a restore is recorded, then restored from the object store; a failure is recorded with its reason; a history is recorded', async () => {
  const calls: string[] = [];
  const at = '2024-01-02T03:04:05.000Z';
  const { result, handle } = await run('restore', [{ id: 'restore-test-1', at, repos: ['acme/web'], postgres: false }], fakes(calls), 'wf-restore');
  expect(result).toEqual({ ok: true, r: { id: 'restore-test-1', dir: '/restores/restore-test-1', backupId: 'b9', repos: 1, postgres: false } });
  expect(calls).toEqual(['record restore', `restore restore-test-1 at=${at} repos=acme/web postgres=false`]);
  if (process.env.DOTGIT_RECORD_HISTORY === '1' || !existsSync(RESTORE_HISTORY_FILE)) {
    await fs.writeFile(RESTORE_HISTORY_FILE, historyToJSON(await handle.fetchHistory()));
  }
  const failed: string[] = [];
  const refused = await run('restore', [{ id: 'restore-test-2', at }], fakes(failed, { failRepos: true }), 'wf-restore-fail');
  expect(refused.result.ok).toBe(false);
  expect(failed).toEqual(['record restore', `restore restore-test-2 at=${at} repos=all postgres=undefined`, 'restore failed: no backup covers that time']);
});

test('the recorded backup history replays against the current workflow code', async () => {
  const history = historyFromJSON(JSON.parse(readFileSync(HISTORY_FILE, 'utf8')));
  expect(history.events?.length).toBeGreaterThan(10);
  await Worker.runReplayHistory({ workflowsPath: WORKFLOWS }, history, 'backup-v1');
});

// ADR 0014: with repositories on storage nodes, each up node's repository part runs on its own
// queue (dotgit-storage@<node>), by the worker beside it; the manifest combines the parts and
// names the nodes that missed the backup (down: listed by listBackupNodes). The drill compares
// restored tips with live repositories on each node likewise.
const NODE_HISTORY_FILE = path.join(__dirname, 'histories', 'backup-node-v2.json');

function nodeFakes(calls: string[], o: { failNode?: string } = {}): { orchestration: BackupActivities; node: (id: string) => BackupActivities } {
  const orchestration = {
    ...fakes(calls),
    listBackupNodes: async () => (calls.push('list nodes'), { up: ['n1', 'n2'], down: ['n3'] }),
    backupRepositories: async () => {
      throw ApplicationFailure.nonRetryable('the orchestration worker must not read repositories', 'WrongNodeError');
    },
    completeBackup: async (a: Parameters<BackupActivities['completeBackup']>[0]) => (
      calls.push(`manifest ${a.repos}/${a.changed} nodes=${a.nodes?.join(',')} missed=${a.missedNodes?.join(',')}`),
      { id: a.id, repos: a.repos + 1, changed: a.changed, postgresBase: false, missedNodes: a.missedNodes }
    ),
    compareWithLive: async (a: { id: string; liveOnNodes?: boolean }) => (calls.push(`compare liveOnNodes=${a.liveOnNodes}`), { problems: [], backupId: 'b9' }),
  } as BackupActivities;
  const node = (id: string) =>
    ({
      backupRepositories: async (a: { id: string; full: boolean; node?: string }) => {
        calls.push(`repos@${id} node=${a.node} full=${a.full}`);
        if (o.failNode === id) throw ApplicationFailure.nonRetryable('disk full', 'RepoBackupError');
        return id === 'n1' ? { repos: 2, changed: 1 } : { repos: 3, changed: 3 };
      },
      checkLiveRepos: async (a: { backupId: string; node: string }) => (calls.push(`live@${id} ${a.backupId} node=${a.node}`), { problems: id === 'n2' ? ['acme/web: restored abc is unknown to the live repository'] : [] }),
    }) as unknown as BackupActivities;
  return { orchestration, node };
}

async function runOnNodes<T>(type: string, args: unknown[], o: { failNode?: string }, workflowId: string) {
  const calls: string[] = [];
  const f = nodeFakes(calls, o);
  const orchestration = await Worker.create({ connection: env.nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities: f.orchestration });
  const n1 = await Worker.create({ connection: env.nativeConnection, taskQueue: storageQueue('n1'), activities: f.node('n1') });
  const n2 = await Worker.create({ connection: env.nativeConnection, taskQueue: storageQueue('n2'), activities: f.node('n2') });
  const handle = await env.client.workflow.start(type, { workflowId, taskQueue: ORCHESTRATION_QUEUE, args });
  const done = handle.result().then((r) => ({ ok: true as const, r: r as T }), (err: Error) => ({ ok: false as const, err }));
  const result = await orchestration.runUntil(n1.runUntil(n2.runUntil(done)));
  return { result, handle, calls };
}

test("a backup on storage nodes bundles each node's repositories on its queue and combines them, a down node missing it; a history is recorded", async () => {
  const { result, handle, calls } = await runOnNodes('backup', [{ id: 'backup-20240101T000000000Z-nodes', trigger: 'api' }], {}, 'wf-backup-nodes');
  expect(result).toEqual({ ok: true, r: { id: 'backup-20240101T000000000Z-nodes', repos: 6, changed: 4, postgresBase: false, missedNodes: ['n3'] } });
  // The two nodes' parts run side by side, then Postgres, the manifest (both parts, n3 missed) and retention.
  expect(calls.slice(0, 2)).toEqual(['start api', 'list nodes']);
  expect(calls.slice(2, 4).sort()).toEqual(['repos@n1 node=n1 full=false', 'repos@n2 node=n2 full=false']);
  expect(calls.slice(4)).toEqual(['postgres', 'manifest 5/4 nodes=n1,n2 missed=n3', 'retention']);
  const queues = (await handle.fetchHistory()).events!.flatMap((e) => (e.activityTaskScheduledEventAttributes?.activityType?.name === 'backupRepositories' ? [e.activityTaskScheduledEventAttributes.taskQueue!.name] : []));
  expect(queues.sort()).toEqual([storageQueue('n1'), storageQueue('n2')]);
  if (process.env.DOTGIT_RECORD_HISTORY === '1' || !existsSync(NODE_HISTORY_FILE)) {
    await fs.writeFile(NODE_HISTORY_FILE, historyToJSON(await handle.fetchHistory()));
  }
});

test("a node's repository part that fails fails the backup: no manifest", async () => {
  const { result, calls } = await runOnNodes('backup', [{ trigger: 'schedule' }], { failNode: 'n2' }, 'wf-backup-nodes-fail');
  expect(result.ok).toBe(false);
  expect(calls.filter((c) => c.startsWith('manifest'))).toEqual([]);
  expect(calls.at(-1)).toBe('failed: disk full');
});

const DRILL_HISTORY_FILE = path.join(__dirname, 'histories', 'drill-node-v1.json');

test("the drill compares restored tips with live repositories on each node's queue; a history is recorded", async () => {
  const { result, calls, handle } = await runOnNodes('restoreDrill', [], {}, 'wf-drill-nodes');
  expect(result).toEqual({ ok: true, r: { ok: false, backupId: 'b9', problems: ['acme/web: restored abc is unknown to the live repository'] } });
  expect(calls.slice(0, 3)).toEqual(['record drill', 'list nodes', 'compare liveOnNodes=true']);
  expect(calls.slice(3, 5).sort()).toEqual(['live@n1 b9 node=n1', 'live@n2 b9 node=n2']);
  expect(calls[5]).toBe('drill failed');
  if (process.env.DOTGIT_RECORD_HISTORY === '1' || !existsSync(DRILL_HISTORY_FILE)) {
    await fs.writeFile(DRILL_HISTORY_FILE, historyToJSON(await handle.fetchHistory()));
  }
});

test.each([
  ['backup-node-v2', NODE_HISTORY_FILE],
  ['drill-node-v1', DRILL_HISTORY_FILE],
])('the recorded history %s.json replays against the current workflow code', async (name, file) => {
  const history = historyFromJSON(JSON.parse(readFileSync(file, 'utf8')));
  expect(history.events?.length).toBeGreaterThan(10);
  await Worker.runReplayHistory({ workflowsPath: WORKFLOWS }, history, name);
});
