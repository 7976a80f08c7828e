/**
 * Issue 13's figure "read throughput of the runs list with 2 replicas vs primary only", on a Patroni
 * cluster of its own made as `npm start -- --ha` makes it, but with 3 members (1 primary, 1
 * synchronous standby, 1 asynchronous replica: 2 replicas):
 *
 *   node --import tsx bench/replica-reads.ts        (BENCH_REPLICA_SECONDS per phase, default 10; BENCH_REPLICA_CLIENTS, default 16)
 *
 * The runs list is what `GET /api/v1/repos/{owner}/{repo}/runs` asks (runs-store listRuns, then the
 * step counts of those runs), over a repository of 300 runs with 4 steps each, sent by
 * BENCH_REPLICA_CLIENTS loops through one createDb pool (10 connections, as a service has):
 * first outside onReplicas (every read on the primary), then inside it (the 2 standbys, round
 * robin; ADR 0027). All members share this machine's cores, so the ratio shows the routing's cost
 * and spread, not the capacity separate machines would add. Rewrites only its section of
 * BENCHMARKS.md.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDb, type Db } from '../core/db';
import { databaseState, onReplicas, replicaReads } from '../core/db-replicas';
import { migrate } from '../core/migrate';
import { insertRepo } from '../core/stores/repos-store';
import { countStepsByStatus, listRuns } from '../core/stores/runs-store';
import { ensureTenant } from '../core/stores/tenants-store';
import { startHaPostgres } from '../infra/provision/patroni';
import { ROOT } from '../infra/root';
import { intEnv, replaceSection, sleep } from './lib';

export const REPLICA_READS_HEADING = '## Reads on replicas: runs list (issue 13)';
const SECONDS = intEnv('BENCH_REPLICA_SECONDS', 10, 1, 600);
const CLIENTS = intEnv('BENCH_REPLICA_CLIENTS', 16, 1, 256);
const progress = (m: string) => console.log(`bench: ${m}`);

/** Runs lists read per second by CLIENTS loops for SECONDS, and their median latency. */
async function measure(db: Db, tenantId: number, repoId: number, onStandbys: boolean): Promise<{ perSecond: number; medianMs: number }> {
  const read = async () => {
    const runs = await listRuns(db, repoId, {});
    await countStepsByStatus(db, tenantId, runs.map((r) => String(r.id)));
  };
  const latencies: number[] = [];
  const end = Date.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (Date.now() < end) {
        const t = performance.now();
        await (onStandbys ? onReplicas(undefined, read) : read());
        latencies.push(performance.now() - t);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return { perSecond: latencies.length / SECONDS, medianMs: latencies[Math.floor(latencies.length / 2)] ?? 0 };
}

async function main(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dotgit-bench-replicas-'));
  await fs.chmod(dir, 0o755);
  const log = { info: () => undefined, warn: (m: string) => console.warn(m), debug: () => undefined };
  progress('starting a Patroni cluster (3 etcd, 3 members)');
  const ha = await startHaPostgres({ dataDir: path.join(dir, 'ha'), toolsDir: path.join(ROOT, '.tools'), log, ephemeral: true, members: 3 });
  const db = createDb(ha.databaseUrl, 10);
  try {
    await migrate(db);
    const tenantId = await ensureTenant(db, 'bench');
    const { id: repoId } = await insertRepo(db, { tenantId, name: 'runs', visibility: 'private', nodeId: null, replicaNodes: [] });
    await db.query(
      `INSERT INTO runs (tenant_id, id, repo_id, ref, commit_sha, status) SELECT $1, 'run-' || g, $2, 'refs/heads/main', md5(g::text), 'success' FROM generate_series(1, 300) g`,
      [tenantId, repoId],
    );
    await db.query(
      `INSERT INTO steps (tenant_id, run_id, job, name, position, status) SELECT $1, 'run-' || g, 'build', 'step-' || s, s, 'success' FROM generate_series(1, 300) g, generate_series(1, 4) s`,
      [tenantId],
    );
    replicaReads.maxLagSeconds = 5;
    for (let i = 0; i < 100 && ((await databaseState(db))?.replicas.filter((r) => r.inReads).length ?? 0) < 2; i++) await sleep(200);
    progress('warming up');
    await measure(db, tenantId, repoId, false);
    progress(`primary only: ${CLIENTS} clients for ${SECONDS} s`);
    const primary = await measure(db, tenantId, repoId, false);
    progress(`2 replicas: ${CLIENTS} clients for ${SECONDS} s`);
    const replicas = await measure(db, tenantId, repoId, true);
    const state = await databaseState(db);
    const load = os.loadavg().map((l) => l.toFixed(2)).join('/');
    const section = [
      REPLICA_READS_HEADING,
      '',
      `Reproduce with \`node --import tsx bench/replica-reads.ts\` (\`BENCH_REPLICA_SECONDS\`, default 10; \`BENCH_REPLICA_CLIENTS\`, default 16). A Patroni cluster of its own (1 primary, 1 synchronous standby, 1 asynchronous replica: 2 replicas), a repository of 300 runs with 4 steps each; the runs list as the api reads it (listRuns, then the runs' step counts) by ${CLIENTS} loops through one \`createDb\` pool of 10 connections, first on the primary only, then inside \`onReplicas\` (both standbys, round robin). ADR 0027.`,
      '',
      `- date: ${new Date().toISOString().slice(0, 10)}; ${os.cpus().length} cores; Node ${process.version}; ${SECONDS} s per phase; load average at the end ${load}`,
      '',
      '| what | runs lists / s | median latency | ratio |',
      '|---|---|---|---|',
      `| primary only | ${primary.perSecond.toFixed(0)} | ${primary.medianMs.toFixed(1)} ms | 1.00× |`,
      `| 2 replicas (reads on standbys) | ${replicas.perSecond.toFixed(0)} | ${replicas.medianMs.toFixed(1)} ms | ${(replicas.perSecond / primary.perSecond).toFixed(2)}× |`,
      '',
      `- Standbys' lag at the end: ${state?.replicas.map((r) => `${r.name} ${r.lagBytes ?? '?'} B / ${r.lagSeconds?.toFixed(1) ?? '?'} s`).join(', ')}.`,
      '- All three servers share this machine\'s cores, so the standbys add no CPU: the ratio is the routing\'s cost and the spread over more server processes, not the capacity of replicas on machines of their own (there, read capacity grows with each replica, and the primary keeps its CPU for writes).',
      '',
    ].join('\n');
    console.log(section);
    const file = path.join(ROOT, 'BENCHMARKS.md');
    await fs.writeFile(file, replaceSection(await fs.readFile(file, 'utf8'), REPLICA_READS_HEADING, section));
  } finally {
    await db.end();
    await ha.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
