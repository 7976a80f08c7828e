/**
 * Shard move figures (issue 12 item 3, ADR 0026): `node --import tsx bench/shard-move.ts`.
 * Starts an embedded Postgres of its own with two databases (`global`, `db2`) and a Temporal dev
 * server (as the workflow tests do), seeds one shard with BENCH_SHARD_MOVE_RUNS runs (default
 * 20000; each with 2 steps, 1 repository per 20 runs), and moves it with the real workflow and
 * activities while a writer per moved tenant keeps writing. Reports rows copied per second, the
 * workflow's measured write pause (fence → switch visible) and the writers' longest wait, for
 * BENCH_SHARD_MOVE_ROUNDS moves back and forth (default 3), and rewrites its section of
 * BENCHMARKS.md.
 */
import { existsSync, mkdtempSync, promises as fs, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { createShardMoveActivities } from '../activities/shard-move-activities';
import { createDb, inTransaction } from '../core/db';
import { migrate } from '../core/migrate';
import { ORCHESTRATION_QUEUE } from '../core/run-types';
import { ID_BLOCK_SIZE } from '../core/shard-databases';
import { retryWhenFenced } from '../core/shard-fence';
import { GLOBAL_DATABASE, type ResolvedShardMap } from '../core/shard-map';
import type { ShardMoveResult } from '../core/shard-moves';
import { openShardRouter } from '../core/shard-router';
import { shardOf } from '../core/shards';
import { ensureIdBlock, raiseIdentitySequences, seedShardPlacements } from '../core/stores/shard-placements-store';
import { startEmbeddedPostgres } from '../infra/provision/postgres';
import { ROOT } from '../infra/root';
import { startWorkflowTestEnv } from '../test/helpers/workflow-env';
import { intEnv } from './lib';

const RUNS = intEnv('BENCH_SHARD_MOVE_RUNS', 20_000, 100, 1_000_000);
const ROUNDS = intEnv('BENCH_SHARD_MOVE_ROUNDS', 3, 1, 20);
const SECTION = '## Shard move (issue 12)';

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dotgit-bench-shard-'));
  const quiet = { info: () => undefined, warn: () => undefined, debug: () => undefined };
  const pg = await startEmbeddedPostgres({ dataDir: path.join(dir, 'pg'), port: 0, log: quiet as never, ephemeral: true });
  const env = await startWorkflowTestEnv();
  const admin = createDb(pg.databaseUrl, 2);
  const url = (name: string) => Object.assign(new URL(pg.databaseUrl), { pathname: `/${name}` }).toString();
  try {
    for (const d of ['bench_global', 'bench_db2']) await admin.query(`CREATE DATABASE ${d}`);
    const map: ResolvedShardMap = { databases: [{ name: GLOBAL_DATABASE, url: url('bench_global') }, { name: 'db2', url: url('bench_db2') }], shards: Array(8).fill(GLOBAL_DATABASE) };
    const router = await openShardRouter(map, { max: 8 });
    const writers = await openShardRouter(map, { max: 8 });
    for (const d of router.databases()) {
      await migrate(d.db);
      const block = await inTransaction(router.global, (c) => ensureIdBlock(c, d.name, d.name === GLOBAL_DATABASE));
      await raiseIdentitySequences(d.db, block * ID_BLOCK_SIZE);
    }
    await seedShardPlacements(router.global, map.shards);
    await router.refresh();
    await writers.refresh();
    const ids: number[] = [];
    for (let i = 0; i < 20; i++) {
      const { id } = (await router.global.query<{ id: number }>(`INSERT INTO tenants (name) VALUES ($1) RETURNING id::int AS id`, [`t${i}`])).rows[0];
      for (const d of router.databases().slice(1)) await d.db.query(`INSERT INTO tenants (id, name) OVERRIDING SYSTEM VALUE VALUES ($1, $2)`, [id, `t${i}`]);
      ids.push(id);
    }
    const shard = shardOf(ids[0]);
    const tenants = ids.filter((id) => shardOf(id) === shard).slice(0, 2);
    const db = router.global;
    for (const t of tenants) {
      const runs = Math.floor(RUNS / tenants.length);
      await db.query(`INSERT INTO repos (tenant_id, name, visibility) SELECT $1::bigint, 'r' || g, 'private' FROM generate_series(1, $2::int) g`, [t, Math.ceil(runs / 20)]);
      await db.query(
        `INSERT INTO runs (tenant_id, id, repo_id, ref, commit_sha, status)
         SELECT $1::bigint, 'seed-' || $1::bigint || '-' || g, (SELECT id FROM repos WHERE tenant_id = $1::bigint AND name = 'r' || (1 + g / 20)), 'refs/heads/main', md5(g::text), 'success'
           FROM generate_series(0, $2::int - 1) g`,
        [t, runs],
      );
      await db.query(
        `INSERT INTO steps (tenant_id, run_id, job, name, position, status, exit_code)
         SELECT $1::bigint, r.id, 'build', 'step' || g, g, 'success', 0 FROM runs r CROSS JOIN generate_series(1, 2) g WHERE r.tenant_id = $1::bigint`,
        [t],
      );
    }
    const workflowBundle = await bundleWorkflowCode({ workflowsPath: path.join(ROOT, 'workflows', 'index.ts'), logger: quiet as never });
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowBundle, activities: createShardMoveActivities({ router }) });
    const rounds: Array<ShardMoveResult & { writerLongestWaitMs: number; writes: number }> = [];
    await worker.runUntil(async () => {
      for (let round = 0; round < ROUNDS; round++) {
        const from = round % 2 === 0 ? GLOBAL_DATABASE : 'db2';
        const to = round % 2 === 0 ? 'db2' : GLOBAL_DATABASE;
        let stop = false;
        let longest = 0;
        let writes = 0;
        const load = tenants.map(async (t, w) => {
          for (let k = 0; !stop; k++) {
            const started = Date.now();
            await retryWhenFenced(writers, () => writers.forTenant(t).query(`INSERT INTO repos (tenant_id, name, visibility) VALUES ($1, $2, 'private')`, [t, `w${round}-${w}-${k}`]), { attempts: 1000, delayMs: 20 });
            longest = Math.max(longest, Date.now() - started);
            writes++;
          }
        });
        const handle = await env.client.workflow.start('shardMove', { workflowId: `shard-move:${shard}:${round}`, taskQueue: ORCHESTRATION_QUEUE, args: [{ shard, from, to, graceSeconds: 0, batchRows: 1000 }] });
        const outcome = await handle.result().then((r: ShardMoveResult) => r, (err: Error) => err);
        stop = true;
        await Promise.all(load);
        if (outcome instanceof Error) throw new Error(`round ${round + 1}: the move failed: ${(outcome.cause as Error | undefined)?.message ?? outcome.message}`);
        const r = outcome;
        rounds.push({ ...r, writerLongestWaitMs: longest, writes });
        console.log(`round ${round + 1}: ${from} -> ${to}: ${r.rowsCopied} rows in ${r.copySeconds.toFixed(2)} s (${r.rowsPerSecond} rows/s), pause ${r.writePauseMs} ms, writers' longest wait ${longest} ms, ${writes} writes`);
      }
    });
    await writeSection(rounds);
    await Promise.all([router.close(), writers.close()]);
  } finally {
    await admin.end().catch(() => undefined);
    await env.teardown().catch(() => undefined);
    await pg.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function writeSection(rounds: Array<ShardMoveResult & { writerLongestWaitMs: number; writes: number }>): Promise<void> {
  const rows = rounds.map(
    (r, i) => `| ${i + 1} | ${r.from} → ${r.to} | ${r.rowsCopied} | ${r.copySeconds.toFixed(2)} | ${r.rowsPerSecond} | ${r.catchUpPasses} / ${r.changesApplied} | ${r.writePauseMs} | ${r.writerLongestWaitMs} | ${r.writes} |`,
  );
  const section = [
    SECTION,
    '',
    `\`node --import tsx bench/shard-move.ts\` (${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores, load average ${os.loadavg()[0].toFixed(1)} at the end): one logical shard`,
    `(${RUNS} runs, 2 steps each, a repository per 20 runs: ${rounds[0]?.rowsCopied ?? 0} rows) moved between two databases of one embedded`,
    'Postgres with the real `shardMove` workflow and activities (batches of 1000), while one writer per moved tenant',
    'inserts repositories without pause on a router nobody refreshes but the fence. Goal: writes to the moved shard paused ≤ 5 s.',
    '',
    '| round | move | rows copied | copy s | rows/s | catch-up passes / changes replayed | write pause ms (fence → switch visible) | writers\' longest wait ms | writes during the move |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    `Median: ${median(rounds.map((r) => r.rowsPerSecond))} rows/s copied, write pause ${median(rounds.map((r) => r.writePauseMs))} ms (the pause covers the final replay, the`,
    'verify of every table\'s count and checksum on both sides, and the switch, so it grows with the shard; ADR 0026).',
    '',
  ].join('\n');
  const file = path.join(ROOT, 'BENCHMARKS.md');
  const text = existsSync(file) ? await fs.readFile(file, 'utf8') : '# Benchmarks\n';
  const start = text.indexOf(SECTION);
  let next = start < 0 ? -1 : text.indexOf('\n## ', start + SECTION.length);
  if (next >= 0) next += 1;
  const updated = start < 0 ? `${text.trimEnd()}\n\n${section}` : `${text.slice(0, start)}${section}${next >= 0 ? `\n${text.slice(next)}` : ''}`;
  await fs.writeFile(file, updated.endsWith('\n') ? updated : `${updated}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
