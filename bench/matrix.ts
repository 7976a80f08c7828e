/**
 * Issue 17's figure "a 16-combination matrix" (`BENCH_ONLY=matrix`; ADR 0037), on a platform of its
 * own: a 4×4 matrix job (16 instances of one `run: "true"` step) against its peer in the same run,
 * the same 16 jobs written out one by one without a matrix. Measured per run: the time from the
 * push returning to the 16th instance's step `startedAt` (all 16 started), and Temporal work per
 * job from the run's own workflow history (workflow tasks completed + activities scheduled +
 * signals and child workflows started: what Temporal bills as actions, counted the same way for
 * both). BENCH_MATRIX_ROUNDS (default 3) rounds, matrix and peer alternating.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { LIMITS_OUT_OF_THE_WAY, ownPlatformEnv } from '../infra/own-platform-env';
import { ROOT, startPlatform, type Platform } from '../infra/platform';
import { Api, benchTenant, fmtMs, fmtRatio, fmtStats, Git, intEnv, replaceSection, runIdsFrom, type RunView, sleep, stats } from './lib';

export const MATRIX_HEADING = '## A 16-combination matrix (issue 17)';
const OWNER = 'bench';
const ROUNDS = intEnv('BENCH_MATRIX_ROUNDS', 3, 1, 20);
const AXIS = ['a', 'b', 'c', 'd'];

const MATRIX = `jobs:
  m:
    matrix: { x: [${AXIS.join(', ')}], y: [${AXIS.join(', ')}] }
    steps: [{ name: s, run: "true" }]
`;
const PLAIN = `jobs:\n${AXIS.flatMap((x) => AXIS.map((y) => `  m-${x}-${y}:\n    steps: [{ name: s, run: "true" }]\n`)).join('')}`;

export function replaceMatrixSection(doc: string, section: string): string {
  return replaceSection(doc, MATRIX_HEADING, section);
}

/** Temporal's billable work in one workflow history, the same count for both sides. */
function actionsOf(events: { eventType?: unknown }[]): number {
  const counted = new Set(['EVENT_TYPE_WORKFLOW_EXECUTION_STARTED', 'EVENT_TYPE_WORKFLOW_TASK_COMPLETED', 'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED', 'EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED', 'EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED', 'EVENT_TYPE_TIMER_STARTED', 'EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES']);
  // eventType is a number in the SDK's protos: map through the enum's names.
  return events.filter((e) => counted.has(typeof e.eventType === 'string' ? e.eventType : eventTypeName(Number(e.eventType)))).length;
}
const EVENT_TYPES: Record<number, string> = { 1: 'EVENT_TYPE_WORKFLOW_EXECUTION_STARTED', 6: 'EVENT_TYPE_WORKFLOW_TASK_COMPLETED', 10: 'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED', 17: 'EVENT_TYPE_TIMER_STARTED', 29: 'EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED', 32: 'EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED', 40: 'EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES' };
const eventTypeName = (n: number) => EVENT_TYPES[n] ?? String(n);

export async function runMatrixBench(progress: (m: string) => void): Promise<string> {
  const dataDir = path.join(ROOT, '.bench-data', `matrix-${process.pid}`);
  const scratch = path.join(dataDir, 'bench');
  await fs.rm(dataDir, { recursive: true, force: true });
  await fs.mkdir(path.join(scratch, 'home'), { recursive: true });
  const loadBefore = os.loadavg();
  progress(`matrix: starting a platform in ${path.relative(ROOT, dataDir)}`);
  let platform: Platform | undefined;
  let connection: Connection | undefined;
  try {
    platform = await startPlatform({
      env: ownPlatformEnv(dataDir, { DOTGIT_RATE_LIMITS: LIMITS_OUT_OF_THE_WAY }),
      log: { info: () => undefined, debug: () => undefined, warn: (m: string) => progress(`platform: ${m}`) },
      ephemeral: true,
    });
    connection = await Connection.connect({ address: platform.temporalAddress });
    const temporal = new Client({ connection, namespace: platform.namespace });
    const api = new Api(platform.gatewayUrl);
    const token = await benchTenant(api, platform.adminToken, OWNER);
    const git = new Git(path.join(scratch, 'home'));
    const sides = { matrix: MATRIX, plain: PLAIN } as const;
    const work: Record<string, string> = {};
    for (const [name, file] of Object.entries(sides)) {
      await api.call('POST', '/api/v1/repos', token, { owner: OWNER, name, visibility: 'private' });
      work[name] = path.join(scratch, name);
      await git.run(['init', '--quiet', '--initial-branch=main', work[name]]);
      await fs.mkdir(path.join(work[name], '.dotgit'), { recursive: true });
      await fs.writeFile(path.join(work[name], '.dotgit', 'pipeline.yml'), file);
    }
    /** Pushes a commit of `name`, waits for its run: ms to all 16 steps started, and actions per job. */
    const run = async (name: string, round: number) => {
      await fs.writeFile(path.join(work[name], 'round.txt'), `${round}\n`);
      await git.run(['add', '-A'], work[name]);
      await git.run(['commit', '--quiet', '-m', `round ${round}`], work[name]);
      const pushed = await git.run(['push', '--quiet', api.cloneUrl(OWNER, name, token), 'main'], work[name]);
      const pushedAt = Date.now();
      const [id] = runIdsFrom(pushed.stderr);
      if (!id) throw new Error(`the push started no run: ${pushed.stderr}`);
      for (;;) {
        const r = await api.call<RunView>('GET', `/api/v1/runs/${encodeURIComponent(id)}`, token);
        if (['success', 'failure', 'cancelled'].includes(r.status)) {
          if (r.status !== 'success' || r.steps.length !== 16) throw new Error(`run ${id} ended ${r.status} with ${r.steps.length} steps: ${r.message}`);
          const lastStart = Math.max(...r.steps.map((s) => Date.parse(s.startedAt!)));
          const events = (await temporal.workflow.getHandle(id).fetchHistory()).events ?? [];
          return { allStartedMs: lastStart - pushedAt, actionsPerJob: actionsOf(events as { eventType?: unknown }[]) / 16 };
        }
        await sleep(100);
      }
    };
    // One warm-up each (the first sandbox start on a host self-tests it).
    await run('matrix', 0);
    await run('plain', 0);
    const got: Record<string, { allStartedMs: number; actionsPerJob: number }[]> = { matrix: [], plain: [] };
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 ? ['matrix', 'plain'] : ['plain', 'matrix'];
      for (const name of order) got[name].push(await run(name, round));
      progress(`matrix: round ${round}/${ROUNDS}: matrix ${fmtMs(got.matrix.at(-1)!.allStartedMs)}, plain ${fmtMs(got.plain.at(-1)!.allStartedMs)}`);
    }
    const started = { matrix: stats(got.matrix.map((g) => g.allStartedMs)), plain: stats(got.plain.map((g) => g.allStartedMs)) };
    const actions = { matrix: stats(got.matrix.map((g) => g.actionsPerJob)), plain: stats(got.plain.map((g) => g.actionsPerJob)) };
    const n = (x: number) => x.toFixed(2);
    return [
      MATRIX_HEADING,
      '',
      `Measured ${new Date().toISOString().slice(0, 16)}Z on ${os.cpus().length} cores (load ${loadBefore.map((l) => l.toFixed(1)).join(' ')} before), a platform of its own (one sandbox host), runsc; ${ROUNDS} rounds after one warm-up each; \`BENCH_ONLY=matrix npm run bench\` (bench/matrix.ts).`,
      '',
      '| | 4×4 matrix (16 instances) | peer: the same 16 jobs written out | matrix ÷ peer |',
      '|---|---|---|---|',
      `| push returned → all 16 steps started | ${fmtStats(started.matrix)} | ${fmtStats(started.plain)} | ${fmtRatio(started.matrix.median / started.plain.median)} |`,
      `| Temporal actions per job (run's history ÷ 16) | ${fmtStats(actions.matrix, n)} | ${fmtStats(actions.plain, n)} | ${fmtRatio(actions.matrix.median / actions.plain.median)} |`,
      '',
      'A matrix is expanded when the file is read (ADR 0023), so its instances are ordinary jobs to the workflow: the ratios near 1 are that claim measured. "Started" is the step\'s `startedAt` (the sandbox host took it), so the figure includes waiting for sandbox slots on this machine. Actions counted from the run\'s workflow history: workflow started, workflow tasks completed, activities scheduled, timers, signals to other workflows, child workflows and search-attribute upserts.',
      '',
    ].join('\n');
  } finally {
    await connection?.close().catch(() => undefined);
    await platform?.stop().catch(() => undefined);
    await fs.rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
  }
}
