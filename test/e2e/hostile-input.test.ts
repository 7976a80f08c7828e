import { spawn } from 'node:child_process';
import { appendFileSync, readdirSync, readFileSync } from 'node:fs';
import { platformInfo } from '../harness/platform-info';
import { api, createPrivateRepo, createTenantWithAdmin, waitForRun } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom, tempDir } from '../helpers/git';
import { problemWith } from './hostile/check';
import { apiJsonCases } from './hostile/api-json';
import { gitClientCases, gitHttpCases } from './hostile/git';
import { headerCases } from './hostile/headers';
import { CONTROL, jwtCases, makeJwts } from './hostile/jwt';
import { nameCases } from './hostile/names';
import { oauthCases } from './hostile/oauth';
import { PIPELINE_CASES } from './hostile/pipeline';
import type { Ctx, GitClientCase, HttpCase, Kind } from './hostile/types';
import { send } from './hostile/wire';

// The hostile-input corpus (issue 10): several hundred bad requests, names, headers, git protocol
// messages, pipeline files, OAuth requests and JWTs against the real platform. Each must be a
// clean 4xx (or, for a pipeline file, a failed run) whose message names the problem; afterwards
// every service still answers /healthz and none was restarted.

const SERVICES = { gateway: 'gateway/main.ts', api: 'api/main.ts', 'git-server': 'git-server/main.ts', worker: 'worker/main.ts' } as const;
/** Requests in flight at once: enough to be quick, few enough for a shared 2-core machine. */
const BATCH = 8;

/** Pids of this platform's service processes (by entry point and data dir), so a restart shows as a new pid. */
function servicePids(): Record<string, number[]> {
  const dataDir = platformInfo().dataDir;
  const found: Record<string, number[]> = Object.fromEntries(Object.keys(SERVICES).map((k) => [k, []]));
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      // From source (`…/main.ts`) or compiled (`dist/…/main.js`, ADR 0029).
      const service = Object.entries(SERVICES).find(([, main]) => cmd.includes(main) || cmd.includes(main.replace(/\.ts$/, '.js')));
      if (!service) continue;
      if (!readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0').includes(`DOTGIT_DATA_DIR=${dataDir}`)) continue;
      found[service[0]].push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  for (const k of Object.keys(found)) found[k].sort((a, b) => a - b);
  return found;
}

const describe = (item: unknown) => {
  const c = item as { kind?: string; name?: string; c?: { name: string } };
  return `${c.kind ?? c.c?.name ?? 'case'} | ${c.name ?? ''}`;
};

/** Runs `fn` over `items` with at most `size` in flight; answers the failures (fn's strings), in item order. */
async function inPool<T>(items: T[], size: number, fn: (item: T) => Promise<string | undefined>): Promise<string[]> {
  const results: Array<string | undefined> = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]).catch((err: Error) => `${describe(items[i])} | threw: ${err.message}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(size, items.length) }, worker));
  return results.filter((r): r is string => r !== undefined);
}

let ctx: Ctx;
let work: string;
let pidsBefore: Record<string, number[]>;
let pipelines: Promise<string[]>;
const counts: Partial<Record<Kind, number>> = {};
const started = Date.now();

beforeAll(async () => {
  pidsBefore = servicePids();
  const [t, other] = await Promise.all([createTenantWithAdmin(), createTenantWithAdmin()]);
  const read = await api<{ token: string }>('POST', '/api/v1/tokens', { token: t.token, body: { scopes: ['read'] } });
  if (read.status !== 201) throw new Error(`read token: ${read.status} ${read.text}`);
  const repo = await createPrivateRepo(t, 'hostile');
  work = await localRepo({ 'README.md': 'hostile\n' });
  const push = await git(['push', cloneUrl(t.tenant, repo, t.token), 'main'], work);
  if (push.code !== 0) throw new Error(`push: ${push.stderr}`);
  const head = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  const run = await api<{ id: string }>('POST', `/api/v1/repos/${t.tenant}/${repo}/runs`, { token: t.token, body: { ref: 'main' } });
  if (run.status !== 202) throw new Error(`run: ${run.status} ${run.text}`);
  ctx = { t, readToken: read.body.token, admin: platformInfo().adminToken, repo, head, runId: run.body.id, otherTenant: other.tenant, jwts: {} };
  ctx.jwts = await makeJwts(ctx);
  // Pushes and runs take the longest (hooks, a workflow per run): started now, they go on while the
  // HTTP cases run, and their test waits for them.
  pipelines = pipelineFailures().catch((err: Error) => [`pipeline | threw: ${err.message}`]);
});

async function runHttp(cases: HttpCase[]): Promise<string[]> {
  for (const c of cases) counts[c.kind] = (counts[c.kind] ?? 0) + 1;
  const gw = platformInfo().gatewayUrl;
  return inPool(cases, BATCH, async (c) => {
    const t0 = Date.now();
    const answer = await send(gw, c.req);
    // HOSTILE_TRACE=<file>: every case's answer, to see what the platform said (passing or not).
    if (process.env.HOSTILE_TRACE) appendFileSync(process.env.HOSTILE_TRACE, `${c.kind} | ${c.name} | ${Date.now() - t0} ms | ${answer.status} ${answer.text.slice(0, 300)}\n`);
    const problem = problemWith(c.expect, answer);
    return problem && `${c.kind} | ${c.name} | ${problem}`;
  });
}

const expectNone = (failures: string[]) => expect(failures.join('\n')).toBe('');

test('API JSON bodies', async () => {
  expectNone(await runHttp(apiJsonCases(ctx)));
});

test('resource names', async () => {
  expectNone(await runHttp(nameCases(ctx)));
});

test('headers', async () => {
  expectNone(await runHttp(headerCases(ctx)));
});

test('OAuth token endpoint', async () => {
  expectNone(await runHttp(oauthCases(ctx)));
});

test('JWTs', async () => {
  const control = await api('GET', `/api/v1/repos/${ctx.t.tenant}/${ctx.repo}`, { token: ctx.jwts[CONTROL] });
  expect(control.status).toBe(200);
  expectNone(await runHttp(jwtCases(ctx)));
});

test('git protocol: raw requests and the real git client', async () => {
  const failures = await runHttp(gitHttpCases(ctx));
  const clientCases = gitClientCases(ctx);
  counts.git = (counts.git ?? 0) + clientCases.length;
  failures.push(
    ...(await inPool(clientCases, 4, async (c: GitClientCase) => {
      const r = await git(c.args, work);
      if (r.code === 0) return `git | ${c.name} | git succeeded: ${r.stdout.slice(0, 200)}`;
      return c.stderr.test(r.stderr) ? undefined : `git | ${c.name} | git's error does not match ${c.stderr}: ${r.stderr.trim().slice(0, 300)}`;
    })),
  );
  expectNone(failures);
});

/** A local repository with one branch per file (`case-<i>`, each its own root commit), written by one `git fast-import`. */
async function branchesOf(files: string[]): Promise<string> {
  const dir = tempDir();
  await git(['init', '-q', '-b', 'main'], dir);
  const parts: Buffer[] = [];
  files.forEach((text, i) => {
    const bytes = Buffer.from(text);
    parts.push(Buffer.from(`commit refs/heads/case-${i}\ncommitter Test <test@example.com> 0 +0000\ndata 4\ncase\nM 100644 inline .dotgit/pipeline.yml\ndata ${bytes.length}\n`), bytes, Buffer.from('\n'));
  });
  await new Promise<void>((resolve, reject) => {
    const child = spawn('git', ['fast-import', '--quiet'], { cwd: dir, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`git fast-import: ${stderr}`))));
    child.stdin.end(Buffer.concat(parts));
  });
  return dir;
}

/** The pipeline cases' failures. */
async function pipelineFailures(): Promise<string[]> {
  // A few pushes of several branches each, to repositories of their own: pushes to one repository
  // take turns (its write lock), and each push costs hooks and processes on a shared machine.
  const GROUPS = 4;
  const groups = Array.from({ length: GROUPS }, (_, g) => PIPELINE_CASES.filter((_c, i) => i % GROUPS === g));
  const failures = (
    await Promise.all(
      groups.map(async (cases) => {
        const repo = await createPrivateRepo(ctx.t, 'hostile-pipe');
        const dir = await branchesOf(cases.map((c) => c.yaml));
        const push = await git(['push', cloneUrl(ctx.t.tenant, repo, ctx.t.token), 'refs/heads/case-*:refs/heads/case-*'], dir);
        const ids = runIdsFrom(push.stderr);
        // Which run is which branch: the run answer carries its ref.
        const runs = await Promise.all(ids.map((id) => waitForRun(id, ctx.t.token, 60_000).catch((err: Error) => ({ id, ref: undefined, error: err.message }))));
        return cases.map((c, i) => {
          const fail = (why: string) => `pipeline | ${c.name} | ${why}`;
          const run = runs.find((r) => r.ref === `refs/heads/case-${i}`);
          const refused = new RegExp(`\\[remote rejected\\] case-${i} `).test(push.stderr) || push.code !== 0;
          if (!run) {
            if (refused && c.message.test(push.stderr)) return undefined;
            return fail(`no run for this file (push exit ${push.code}): ${push.stderr.trim().slice(-400)}${runs.some((r) => 'error' in r) ? ` runs: ${JSON.stringify(runs.filter((r) => 'error' in r))}` : ''}`);
          }
          if (run.status !== 'failure') return fail(`run ${run.id} ended ${run.status}, not failure`);
          return c.message.test(run.message ?? '') ? undefined : fail(`run message does not match ${c.message}: ${JSON.stringify(run.message)}`);
        });
      }),
    )
  ).flat().filter((f): f is string => f !== undefined);
  return failures;
}

test('pipeline files pushed with git: each ends in a failed run naming the line', async () => {
  counts.pipeline = PIPELINE_CASES.length;
  expectNone(await pipelines);
}, 110_000);

test('afterwards every service answers /healthz and none was restarted', async () => {
  const info = platformInfo();
  const ports = { gateway: new URL(info.gatewayUrl).port, api: info.apiPort, 'git-server': info.gitPort, worker: info.workerPort };
  for (const [name, port] of Object.entries(ports)) {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect({ name, status: res.status }).toEqual({ name, status: 200 });
  }
  const pidsAfter = servicePids();
  for (const name of Object.keys(SERVICES)) expect(pidsBefore[name].length).toBeGreaterThan(0);
  expect(pidsAfter).toEqual(pidsBefore);
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  console.log(`hostile corpus: ${total} cases ${JSON.stringify(counts)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  expect(total).toBeGreaterThanOrEqual(300);
});
