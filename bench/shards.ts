/**
 * Shard routing figures (issue 12 benchmarks): `BENCH_ONLY=shards npm run bench` (or
 * `node --import tsx bench/shards.ts`). One embedded Postgres of its own; rewrites only its section
 * of BENCHMARKS.md.
 *
 * Through the api (the issue's figure): two platforms side by side (startPlatform, as tests and
 * `npm start` run one), their metadata in databases of that server: one with the 8 shards on its one
 * database, one with DOTGIT_SHARD_MAP spreading them over 4 (`global`, `db2`..`db4`, round robin).
 * On each, tenants until every shard holds BENCH_SHARDS_TENANTS_PER_SHARD (default 2), each with an
 * admin user, its token and a `seed` repository with one pushed commit. Then BENCH_SHARDS_CLIENTS
 * (default 16) concurrent HTTP clients through the gateway for BENCH_SHARDS_API_SECONDS (default 10)
 * per side and round, BENCH_SHARDS_ROUNDS rounds (default 3, the sides' order alternating), each
 * client repeating, for tenant after tenant with that tenant's token: `POST /api/v1/repos`,
 * `POST /api/v1/tokens` and a manual run `POST /api/v1/repos/{tenant}/seed/runs`. Between sides the
 * bench waits until the runs started are finished (no pipeline file: each fails at once), so the
 * other side's workflows do not load the next measurement.
 *
 * Store level (kept, cheap): the same 1 vs 4 databases without the api, BENCH_SHARDS_WRITERS
 * (default 8) writers for BENCH_SHARDS_SECONDS (default 5; 0 skips it), each write a repository and
 * a run record of a tenant in its shard; and the routing overhead per query,
 * `router.forTenant(t).query` vs the same pool queried directly, in alternating blocks of
 * BENCH_SHARDS_QUERIES (default 2000).
 */
import { existsSync, promises as fs, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDb, inTransaction, type Db } from '../core/db';
import { migrateAllDatabases } from '../core/shard-databases';
import { GLOBAL_DATABASE, type ResolvedShardMap, type ShardMapConfig } from '../core/shard-map';
import { openShardRouter, type ShardRouter } from '../core/shard-router';
import { SHARD_COUNT, shardOf } from '../core/shards';
import { LIMITS_OUT_OF_THE_WAY, ownPlatformEnv } from '../infra/own-platform-env';
import { ROOT, startPlatform, type Platform } from '../infra/platform';
import { startEmbeddedPostgres } from '../infra/provision/postgres';
import { Api, Git, intEnv, replaceSection, sleep } from './lib';

export const SHARDS_HEADING = '## Shard routing: 1 vs 4 databases (issue 12)';
/** The issue's goal: routing costs at most 5 % per query. */
const GOAL_OVERHEAD = 0.05;
const WRITERS = intEnv('BENCH_SHARDS_WRITERS', 8, 1, 64);
const SECONDS = intEnv('BENCH_SHARDS_SECONDS', 5, 0, 600);
const QUERIES = intEnv('BENCH_SHARDS_QUERIES', 2000, 100, 100_000);
const CLIENTS = intEnv('BENCH_SHARDS_CLIENTS', 16, 1, 256);
const API_SECONDS = intEnv('BENCH_SHARDS_API_SECONDS', 10, 1, 600);
const ROUNDS = intEnv('BENCH_SHARDS_ROUNDS', 3, 1, 20);
const PER_SHARD = intEnv('BENCH_SHARDS_TENANTS_PER_SHARD', 2, 1, 20);
const progress = (m: string) => console.log(`bench: shards: ${m}`);

// ---- store level -------------------------------------------------------------------------------

async function layout(admin: Db, url: (d: string) => string, prefix: string, count: number): Promise<{ router: ShardRouter; tenants: number[] }> {
  const names = Array.from({ length: count }, (_, i) => `${prefix}_${i}`);
  for (const d of names) await admin.query(`CREATE DATABASE ${d}`);
  const map: ResolvedShardMap = {
    databases: names.map((d, i) => ({ name: i === 0 ? GLOBAL_DATABASE : `db${i + 1}`, url: url(d) })),
    shards: Array.from({ length: 8 }, (_, s) => (s % count === 0 ? GLOBAL_DATABASE : `db${(s % count) + 1}`)),
  };
  const router = await openShardRouter(map, { max: WRITERS });
  // As the platform's start-up does: migrations, identity blocks and placements on every database.
  await migrateAllDatabases(router, map);
  const tenants: number[] = [];
  for (let i = 0; i < 32; i++) {
    const id = Number((await router.global.query<{ id: string }>(`INSERT INTO tenants (name) VALUES ($1) RETURNING id::text AS id`, [`t${i}`])).rows[0].id);
    for (const d of router.databases().slice(1)) await d.db.query(`INSERT INTO tenants (id, name) OVERRIDING SYSTEM VALUE VALUES ($1, $2)`, [id, `t${i}`]);
    tenants.push(id);
  }
  return { router, tenants };
}

async function storeThroughput(router: ShardRouter, tenants: number[], tag: string): Promise<number> {
  let writes = 0;
  const until = Date.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      for (let k = 0; Date.now() < until; k++) {
        const t = tenants[(w * 7 + k) % tenants.length];
        await inTransaction(router.forTenant(t), async (c) => {
          const repo = (await c.query<{ id: string }>(`INSERT INTO repos (tenant_id, name, visibility) VALUES ($1, $2, 'private') RETURNING id::text AS id`, [t, `${tag}-${w}-${k}`])).rows[0].id;
          await c.query(`INSERT INTO runs (tenant_id, id, repo_id, ref, commit_sha, status) VALUES ($1, $2, $3, 'refs/heads/main', md5($2), 'queued')`, [t, `${tag}-${w}-${k}`, repo]);
        });
        writes++;
      }
    }),
  );
  return writes / SECONDS;
}

/**
 * Routing cost per query, two ways. Paired: `router.forTenant(t).query` vs the same pool queried
 * directly, in alternating blocks of QUERIES / 20; the median of the blocks' routed ÷ direct ratios
 * (each pair close in time, so the machine's drift cancels). Lookup: `router.forTenant(t)` alone,
 * timed over many calls, as a share of the direct query's median (the routing's whole cost, which
 * the paired difference buries in noise on a loaded machine).
 */
async function routingOverhead(router: ShardRouter, tenants: number[]): Promise<{ routedUs: number; directUs: number; pairedRatio: number; lookupNs: number }> {
  const t = tenants[0];
  const direct = router.forTenant(t);
  const routed: number[] = [];
  const plain: number[] = [];
  const blocks = 20;
  for (let block = 0; block < blocks; block++) {
    for (const [into, q] of [[routed, () => router.forTenant(t).query('SELECT 1 FROM repos WHERE tenant_id = $1 LIMIT 1', [t])], [plain, () => direct.query('SELECT 1 FROM repos WHERE tenant_id = $1 LIMIT 1', [t])]] as const) {
      const started = process.hrtime.bigint();
      for (let i = 0; i < QUERIES / blocks; i++) await q();
      into.push(Number(process.hrtime.bigint() - started) / 1000 / (QUERIES / blocks));
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const lookups: number[] = [];
  let sink = 0;
  for (let block = 0; block < 20; block++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < 10_000; i++) sink += router.forTenant(tenants[i % tenants.length]) === direct ? 1 : 0;
    lookups.push(Number(process.hrtime.bigint() - started) / 10_000);
  }
  if (sink < 0) throw new Error('unreachable');
  return { routedUs: median(routed), directUs: median(plain), pairedRatio: median(routed.map((r, i) => r / plain[i])), lookupNs: median(lookups) };
}

// ---- through the api ---------------------------------------------------------------------------

interface Tenant {
  name: string;
  shard: number;
  token: string;
}

interface Side {
  name: '1 database' | '4 databases';
  platform: Platform;
  api: Api;
  tenants: Tenant[];
  /** Every database of the side, to wait for its runs to finish. */
  dbs: Db[];
  /** Requests per second of each round; operations (repo + token + run) per second. */
  rps: number[];
  ops: number[];
  p50: number[];
  /** Every timed request's latency by kind, over the measured rounds. */
  byKind: Record<Kind, number[]>;
  errors: number;
}

const KINDS = ['repo', 'token', 'run'] as const;
type Kind = (typeof KINDS)[number];

/** Tenants until every shard has PER_SHARD, each with an admin user, its token and a `seed` repository holding one commit. */
async function seedTenants(api: Api, adminToken: string, git: Git, scratch: string, tag: string): Promise<Tenant[]> {
  const perShard = new Array<number>(SHARD_COUNT).fill(0);
  const tenants: Tenant[] = [];
  const work = path.join(scratch, `seed-${tag}`);
  await git.run(['init', '-q', '-b', 'main', work]);
  await fs.writeFile(path.join(work, 'README.md'), 'seed\n');
  await git.run(['add', '-A'], work);
  await git.run(['commit', '-q', '-m', 'seed'], work);
  for (let i = 0; perShard.some((n) => n < PER_SHARD); i++) {
    if (i >= 200) throw new Error(`200 tenants and still a shard with fewer than ${PER_SHARD}: ${perShard.join(' ')}`);
    const name = `bt${i}`;
    const tenant = await api.call<{ id: number }>('POST', '/api/v1/tenants', adminToken, { name });
    const shard = shardOf(tenant.id);
    if (perShard[shard] >= PER_SHARD) continue;
    perShard[shard]++;
    await api.call('POST', `/api/v1/tenants/${name}/users`, adminToken, { username: `${name}-admin`, role: 'admin' });
    const { token } = await api.call<{ token: string }>('POST', '/api/v1/tokens', adminToken, { username: `${name}-admin`, scopes: ['read', 'write', 'admin'] });
    await api.call('POST', '/api/v1/repos', token, { owner: name, name: 'seed', visibility: 'private' });
    await git.run(['push', '-q', api.cloneUrl(name, 'seed', token), 'main'], work);
    tenants.push({ name, shard, token });
  }
  return tenants;
}

/** CLIENTS loops for API_SECONDS, each op a repository, a token and a manual run of one tenant. */
async function apiRound(s: Side, round: number): Promise<void> {
  let requests = 0;
  let ops = 0;
  const latencies: number[] = [];
  const until = Date.now() + API_SECONDS * 1000;
  const timed = async <T>(kind: Kind, f: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    try {
      return await f();
    } finally {
      const ms = performance.now() - t;
      latencies.push(ms);
      if (round >= 0) s.byKind[kind].push(ms);
      requests++;
    }
  };
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, c) => {
      for (let k = 0; Date.now() < until; k++) {
        const t = s.tenants[(c * 5 + k) % s.tenants.length];
        try {
          await timed('repo', () => s.api.call('POST', '/api/v1/repos', t.token, { owner: t.name, name: `r${round}-${c}-${k}`, visibility: 'private' }));
          await timed('token', () => s.api.call('POST', '/api/v1/tokens', t.token, { scopes: ['read'] }));
          await timed('run', () => s.api.call('POST', `/api/v1/repos/${t.name}/seed/runs`, t.token, { ref: 'main' }, [202]));
          ops++;
        } catch (err) {
          if (s.errors++ < 3) progress(`${s.name}: ${(err as Error).message}`);
        }
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  s.rps.push(requests / API_SECONDS);
  s.ops.push(ops / API_SECONDS);
  s.p50.push(latencies[Math.floor(latencies.length / 2)] ?? NaN);
}

/** Waits (up to 5 min) until no run of the side is queued or running: its workflows leave the CPU to the next measurement. */
async function drain(s: Side): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const open = (await Promise.all(s.dbs.map((db) => db.query<{ n: string }>(`SELECT count(*)::text AS n FROM runs WHERE status IN ('queued', 'running')`)))).reduce((sum, r) => sum + Number(r.rows[0].n), 0);
    if (open === 0) return;
    await sleep(1000);
  }
  progress(`${s.name}: runs still open after 5 min; measuring anyway`);
}

// ---- the section -------------------------------------------------------------------------------

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const load = (l: number[]) => l.map((x) => x.toFixed(1)).join(' / ');

export async function runShardsBench(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dotgit-bench-shards-'));
  const root = path.join(ROOT, '.bench-data', `shards-${process.pid}`);
  await fs.rm(root, { recursive: true, force: true });
  await fs.mkdir(path.join(root, 'home'), { recursive: true });
  const quiet = { info: () => undefined, warn: () => undefined, debug: () => undefined };
  const loadBefore = os.loadavg();
  const started = new Date();
  const pg = await startEmbeddedPostgres({ dataDir: path.join(dir, 'pg'), port: 0, log: quiet as never, ephemeral: true });
  const admin = createDb(pg.databaseUrl, 2);
  const url = (name: string) => Object.assign(new URL(pg.databaseUrl), { pathname: `/${name}` }).toString();
  const platforms: Platform[] = [];
  const closers: Array<() => Promise<unknown>> = [];
  try {
    // Store level first, while nothing else of the bench runs.
    const one = await layout(admin, url, 'one', 1);
    const four = await layout(admin, url, 'four', 4);
    closers.push(() => one.router.close(), () => four.router.close());
    const storeRounds: Array<{ one: number; four: number }> = [];
    if (SECONDS > 0) {
      progress(`store level: ${WRITERS} writers, ${SECONDS} s per layout, 2 rounds`);
      for (let r = 0; r < 2; r++) storeRounds.push({ one: await storeThroughput(one.router, one.tenants, `a${r}`), four: await storeThroughput(four.router, four.tenants, `b${r}`) });
    }
    progress('routing overhead per query');
    const overhead = await routingOverhead(four.router, four.tenants);

    // Through the api: two platforms on databases of this server.
    for (const d of ['api1_global', 'api4_global', 'api4_db2', 'api4_db3', 'api4_db4']) await admin.query(`CREATE DATABASE ${d}`);
    const fourMap: ShardMapConfig = {
      databases: { db2: url('api4_db2'), db3: url('api4_db3'), db4: url('api4_db4') },
      shards: Array.from({ length: SHARD_COUNT }, (_, s) => ['global', 'db2', 'db3', 'db4'][s % 4]),
    };
    const log = { info: () => undefined, debug: () => undefined, warn: (m: string) => progress(`platform: ${m}`) };
    const start = (name: string, extra: Record<string, string>) =>
      startPlatform({ env: ownPlatformEnv(path.join(root, name), { DOTGIT_RATE_LIMITS: LIMITS_OUT_OF_THE_WAY, ...extra }), log, ephemeral: true }).then((p) => (platforms.push(p), p));
    progress('starting the 1-database platform');
    const p1 = await start('one', { DATABASE_URL: url('api1_global') });
    // One after the other: two start-ups at once on two cores time out.
    progress('starting the 4-database platform');
    const p4 = await start('four', { DATABASE_URL: url('api4_global'), DOTGIT_SHARD_MAP: JSON.stringify(fourMap) });
    const git = new Git(path.join(root, 'home'));
    const sides: Side[] = [];
    for (const [name, platform, dbNames] of [['1 database', p1, ['api1_global']], ['4 databases', p4, ['api4_global', 'api4_db2', 'api4_db3', 'api4_db4']]] as const) {
      const api = new Api(platform.gatewayUrl);
      progress(`${name}: tenants`);
      const tenants = await seedTenants(api, platform.adminToken, git, root, name.replace(/\s/g, ''));
      const dbs = dbNames.map((d) => createDb(url(d), 2));
      closers.push(...dbs.map((db) => () => db.end()));
      sides.push({ name, platform, api, tenants, dbs, rps: [], ops: [], p50: [], byKind: { repo: [], token: [], run: [] }, errors: 0 });
    }
    const loadAtStart = os.loadavg();
    // One short warm-up per side (JIT, pools, caches), untimed.
    for (const s of sides) {
      const saved = { rps: [...s.rps], ops: [...s.ops], p50: [...s.p50] };
      await apiRound(s, -1);
      Object.assign(s, saved);
      await drain(s);
    }
    for (let r = 0; r < ROUNDS; r++) {
      for (const s of r % 2 === 0 ? sides : [...sides].reverse()) {
        progress(`round ${r + 1}: ${s.name}, ${CLIENTS} clients for ${API_SECONDS} s`);
        await apiRound(s, r);
        progress(`round ${r + 1}: ${s.name}: ${s.rps[s.rps.length - 1].toFixed(0)} req/s`);
        await drain(s);
      }
    }
    const loadAfter = os.loadavg();
    const [s1, s4] = sides;
    const ratios = s1.rps.map((x, i) => s4.rps[i] / x);
    const pairedPct = overhead.pairedRatio - 1;
    const lookupPct = overhead.lookupNs / 1000 / overhead.directUs;
    const shardsOf = (s: Side) => s.tenants.length;

    const md: string[] = [SHARDS_HEADING, ''];
    md.push(
      `\`BENCH_ONLY=shards npm run bench\` (bench/shards.ts). Measured ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC on ${os.cpus().length} cores shared with other engineers' test runs: load averages (1 / 5 / 15 min) ${load(loadBefore)} before the bench, ${load(loadAtStart)} when the api rounds began, ${load(loadAfter)} at the end. ` +
        `Short runs for this loaded machine: \`BENCH_SHARDS_API_SECONDS\`=${API_SECONDS}, \`BENCH_SHARDS_ROUNDS\`=${ROUNDS}, \`BENCH_SHARDS_CLIENTS\`=${CLIENTS}, \`BENCH_SHARDS_TENANTS_PER_SHARD\`=${PER_SHARD}, \`BENCH_SHARDS_SECONDS\`=${SECONDS}, \`BENCH_SHARDS_WRITERS\`=${WRITERS}, \`BENCH_SHARDS_QUERIES\`=${QUERIES}.`,
      '',
      `**Through the api.** Two platforms side by side (\`startPlatform\`, compiled services, one gateway, api, git-server and worker each), their metadata in one embedded Postgres of the bench's own: one with the 8 shards on its one database, one with \`DOTGIT_SHARD_MAP\` placing them round robin on 4 databases of that server (\`global\`, \`db2\`, \`db3\`, \`db4\`). ` +
        `Each has ${shardsOf(s1)} / ${shardsOf(s4)} tenants, ${PER_SHARD} on every shard, each with an admin user, its token and a \`seed\` repository holding one commit. ` +
        `${CLIENTS} concurrent HTTP clients through the gateway, each repeating, tenant after tenant with that tenant's token: \`POST /api/v1/repos\` (a new repository: row in the tenant's shard, bare repository on the storage node, audit), \`POST /api/v1/tokens\` (a read token: global row, audit in the shard) and \`POST /api/v1/repos/{tenant}/seed/runs\` (a manual run: the ref resolved on the git-server, run and outbox rows in the shard, audit). ` +
        `${API_SECONDS} s per side and round, the order alternating, one untimed warm-up each; between sides the bench waits until every run started has finished (no pipeline file: each fails at once in its workflow), so one side's workflows do not load the other's measurement.`,
      '',
      '| round | 1 database | 4 databases | ratio 4 / 1 |',
      '|---|---|---|---|',
      ...s1.rps.map((x, i) => `| ${i + 1} | ${x.toFixed(0)} req/s (${s1.ops[i].toFixed(1)} ops/s, p50 ${s1.p50[i].toFixed(0)} ms) | ${s4.rps[i].toFixed(0)} req/s (${s4.ops[i].toFixed(1)} ops/s, p50 ${s4.p50[i].toFixed(0)} ms) | ${ratios[i].toFixed(2)} |`),
      `| median (the ratio: of the rounds' ratios) | ${median(s1.rps).toFixed(0)} req/s | ${median(s4.rps).toFixed(0)} req/s | **${median(ratios).toFixed(2)}** |`,
      '',
      `An op is the three requests; p50 is the median request latency. Failed requests: ${s1.errors} (1 database), ${s4.errors} (4 databases).`,
      '',
      '| request, median latency over the rounds | 1 database | 4 databases | ratio 4 / 1 |',
      '|---|---|---|---|',
      ...KINDS.map((k) => {
        const [a, b] = [median(s1.byKind[k]), median(s4.byKind[k])];
        return `| ${{ repo: '`POST /api/v1/repos`', token: '`POST /api/v1/tokens`', run: '`POST …/seed/runs`' }[k]} | ${a.toFixed(0)} ms | ${b.toFixed(0)} ms | ${(b / a).toFixed(2)} |`;
      }),
      '',
    );
    if (storeRounds.length) {
      md.push(
        `**Store level** (no api): the same server, the 8 shards on 1 database vs 4; ${WRITERS} writers, each write a repository and a run record of a tenant in one transaction in its shard, ${SECONDS} s per layout and round.`,
        '',
        '| round | 1 database | 4 databases | ratio 4 / 1 |',
        '|---|---|---|---|',
        ...storeRounds.map((r, i) => `| ${i + 1} | ${r.one.toFixed(0)} writes/s | ${r.four.toFixed(0)} writes/s | ${(r.four / r.one).toFixed(2)} |`),
        '',
      );
    }
    md.push(
      `**Routing overhead per query**, on the 4-database layout: the lookup \`router.forTenant(t)\` alone (the routing's whole work: the tenant's shard, that shard's pool), timed over 200 000 calls, against the median of a direct query; and, paired, \`router.forTenant(t).query\` vs the same pool queried directly, ${QUERIES} queries in 20 alternating blocks each, the median of the blocks' routed ÷ direct ratios.`,
      '',
      '| per query (`SELECT … WHERE tenant_id = $1 LIMIT 1`) | routed | direct | overhead (goal ≤ 5 %) |',
      '|---|---|---|---|',
      `| lookup alone vs a direct query | ${(overhead.lookupNs / 1000).toFixed(3)} µs | ${overhead.directUs.toFixed(1)} µs | ${(lookupPct * 100).toFixed(3)} % (**${lookupPct <= GOAL_OVERHEAD ? 'met' : 'not met'}**) |`,
      `| paired blocks, median µs per query | ${overhead.routedUs.toFixed(1)} | ${overhead.directUs.toFixed(1)} | ${(pairedPct * 100).toFixed(1)} % (median of the pairs' ratios; the noise of this machine) |`,
      '',
      '- Same server, same cores: 4 databases cannot add capacity here, so a ratio near 1 says the router, the extra pools and the fan-out cost little on the api\'s write path; the spread between rounds is the shared machine\'s noise. On 4 servers of their own the writes spread over 4 machines\' disks and cores.',
      `- The routing itself is the tenant's shard (SHA-256 of the tenant id, core/shards.ts) and that shard's pool, ${(overhead.lookupNs / 1000).toFixed(1)} µs per call here, computed anew for every query: ${(lookupPct * 100).toFixed(1)} % of a one-row query; the paired difference of whole queries is within this machine's noise.`,
      `- What a multi-database layout adds on the api's write path is elsewhere, in the fan-outs: \`POST /api/v1/repos\` places the repository on the least-used storage node (\`placeRepo\` and \`placeReplicas\`, core/storage-nodes.ts) by counting each node's repositories in every live database, each count filtered to that database's shards (\`dotgit_shard_of(tenant_id)\`, a SHA-256 per row, ADR 0025), where one database answers with one unfiltered join; the scans grow with the repositories. A token (global row) and a manual run (the tenant's shard only) touch one database on either layout. This run, median latency on 4 ÷ on 1 database: repository ${(median(s4.byKind.repo) / median(s1.byKind.repo)).toFixed(2)}×, token ${(median(s4.byKind.token) / median(s1.byKind.token)).toFixed(2)}×, manual run ${(median(s4.byKind.run) / median(s1.byKind.run)).toFixed(2)}×. A tenant's creation also writes its reference copy in every database (not in the timed loop).`,
      '- Shard move under real load (pushes, runs, api writes and reads, `test/e2e/shards-3db.test.ts`, a ~50-row shard): write pause 0.36–1.8 s from the workflow\'s result over 5 runs on the loaded machine, longest client latency including 503 retries 0.6–2.2 s.',
      '',
    );
    const section = md.join('\n');
    console.log('\n' + section);
    const file = path.join(ROOT, 'BENCHMARKS.md');
    const before = existsSync(file) ? await fs.readFile(file, 'utf8') : '# Benchmarks\n';
    await fs.writeFile(file, replaceSection(before, SHARDS_HEADING, section));
    progress('BENCHMARKS.md: shards section written');
  } finally {
    for (const p of platforms.reverse()) await p.stop().catch(() => undefined);
    for (const c of closers) await c().catch(() => undefined);
    await admin.end().catch(() => undefined);
    await pg.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    await fs.rm(root, { recursive: true, force: true });
  }
}

if (require.main === module) {
  runShardsBench().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
