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
import { ORCHESTRATION_QUEUE } from '../../core/run-types';
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

test('the recorded backup history replays against the current workflow code', async () => {
  const history = historyFromJSON(JSON.parse(readFileSync(HISTORY_FILE, 'utf8')));
  expect(history.events?.length).toBeGreaterThan(10);
  await Worker.runReplayHistory({ workflowsPath: WORKFLOWS }, history, 'backup-v1');
});
