/**
 * Where a small push's time goes (issue 16, "small push ÷ local push"), each side against the
 * same commits in the same run:
 *
 *   node --import tsx bench/push-path.ts      (BENCH_PUSH_PATH_ROUNDS, default 7)
 *
 * Sides, one push of a new one-commit change each per round, in rotating order:
 * - local: `git push` to a bare repository over the file transport (receive.fsckObjects), the peer;
 * - http-backend: smart HTTP to `git http-backend` behind a bare Node CGI bridge (no hooks, no
 *   authentication): what the protocol alone costs over the local push;
 * - git-server: straight to the git-server with the signed identity the gateway would add;
 * - gateway: through the gateway with an API token, as users push.
 * The platform's two sides trigger a one-step run (waited for after the timing, before the next push). With
 * GIT_TRACE2_EVENT on the git-server, the hooks' share of its receive-pack is read from trace2.
 * Rewrites only its section of BENCHMARKS.md.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { RunscDriver } from '../activities/sandbox/runsc-driver';
import { IDENTITY_HEADER, signIdentity } from '../core/internal-identity';
import { LIMITS_OUT_OF_THE_WAY, ownPlatformEnv } from '../infra/own-platform-env';
import { ROOT, startPlatform } from '../infra/platform';
import { adminPrincipal, Api, benchTenant, fmtMs, fmtStats, Git, hookAloneMs, intEnv, replaceSection, runIdsFrom, sleep, stats } from './lib';

export const PUSH_PATH_HEADING = '## Small push: where the time goes (issue 16)';
const ROUNDS = intEnv('BENCH_PUSH_PATH_ROUNDS', 7, 1, 50);
const OWNER = 'bench';
const progress = (m: string) => console.log(`bench: ${m}`);

/** `git http-backend` as CGI behind node:http: the smart-HTTP protocol with nothing of ours. */
function startHttpBackend(projectRoot: string): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const child = spawn('git', ['http-backend'], {
      env: {
        PATH: process.env.PATH,
        GIT_PROJECT_ROOT: projectRoot,
        GIT_HTTP_EXPORT_ALL: '1',
        REMOTE_USER: 'bench', // receive-pack needs an authenticated user (or http.receivepack)
        REQUEST_METHOD: req.method ?? 'GET',
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        ...(req.headers['content-encoding'] ? { HTTP_CONTENT_ENCODING: String(req.headers['content-encoding']) } : {}),
        ...(req.headers['git-protocol'] ? { GIT_PROTOCOL: String(req.headers['git-protocol']) } : {}),
      },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    req.pipe(child.stdin);
    // CGI answer: headers up to a blank line, then the body.
    let head = Buffer.alloc(0);
    let inBody = false;
    child.stdout.on('data', (chunk: Buffer) => {
      if (inBody) return void res.write(chunk);
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      inBody = true;
      for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
        const colon = line.indexOf(':');
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === 'status') res.statusCode = Number(value.split(' ')[0]);
        else res.setHeader(name, value);
      }
      res.write(head.subarray(end + 4));
    });
    child.stdout.on('end', () => res.end());
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

interface Trace2Event {
  event: string;
  sid: string;
  t_abs?: number;
  t_rel?: number;
  child_id?: number;
  child_class?: string;
  hook_name?: string;
  argv?: string[];
}

/**
 * Milliseconds in each part of the git processes whose trace2 events were appended to `file` after
 * byte `from`: each hook (as receive-pack ran it) and each `git receive-pack` process as a whole
 * (the ref advertisement and the push itself).
 */
async function gitTimes(file: string, from: number): Promise<Record<string, number>> {
  const text = (await fs.readFile(file).catch(() => Buffer.alloc(0))).subarray(from).toString('utf8');
  const hooks = new Map<string, string>();
  const commands = new Map<string, string>();
  const totals: Record<string, number> = {};
  const add = (name: string, seconds: number) => (totals[name] = (totals[name] ?? 0) + seconds * 1000);
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    const e = JSON.parse(line) as Trace2Event;
    if (e.event === 'start' && e.argv?.includes('receive-pack')) commands.set(e.sid, e.argv.includes('--advertise-refs') ? 'receive-pack --advertise-refs' : 'receive-pack');
    if (e.event === 'exit' && commands.has(e.sid)) add(commands.get(e.sid)!, e.t_abs ?? 0);
    if (e.event === 'child_start' && e.child_class === 'hook') hooks.set(`${e.sid}/${e.child_id}`, `hook ${e.hook_name}`);
    if (e.event === 'child_exit' && hooks.has(`${e.sid}/${e.child_id}`)) add(hooks.get(`${e.sid}/${e.child_id}`)!, e.t_rel ?? 0);
  }
  return totals;
}

/** What bounds the ratio, from this run's medians (issue 16: "each goal met or an explanation of what bounds it"). */
function boundText(m: { local: number; protocol: number; gitServer: number; gateway: number; hookAlone: number; hooks: number }): string[] {
  const x = (ms: number) => `${(ms / m.local).toFixed(2)}×`;
  const goal = 3 * m.local;
  const margin = Math.max(0, goal - m.protocol);
  const serverWork = Math.max(0, m.hooks - 3 * m.hookAlone);
  const floor = m.protocol + m.hooks;
  return [
    `- **The goal.** ≤ 3× of the local push is ≤ ${fmtMs(goal)} here. Smart HTTP alone, with nothing of ours (\`git http-backend\`), takes ${fmtMs(m.protocol)} (${x(m.protocol)}): two HTTP requests, a CGI process per request and the client's HTTP machinery, where the file transport talks to one \`receive-pack\` over a pipe. That leaves ${fmtMs(margin)} for everything the platform adds.`,
    `- **What the platform adds.** Straight at the git-server: ${fmtMs(m.gitServer)} (+${fmtMs(m.gitServer - m.protocol)} over the protocol), of which the three hooks take ${fmtMs(m.hooks)} (trace2, as receive-pack ran them): pre-receive (the protected-branch check, a gate: git waits for it), reference-transaction \`prepared\` (the push journal row that must exist before the refs move, ADR 0011) and post-receive (the push, run and outbox rows in one transaction, the pipeline file read, the answer naming the run). ${m.gateway >= m.gitServer ? `The gateway hop adds ${fmtMs(m.gateway - m.gitServer)} (authentication, the rate limit's Redis round trip, two proxied requests).` : `The gateway hop is below this run's noise (its side's median ${fmtMs(m.gitServer - m.gateway)} under the git-server's).`}`,
    `- **The bound.** A hook's own process (the shell, its request and answer on the channel git hands it, ADR 0047) costs ${fmtMs(m.hookAlone)}; the rest of the hooks' ${fmtMs(m.hooks)}, about ${fmtMs(serverWork)}, is the git-server's work for them: the protection lookup, the journal insert, and post-receive's git reads and its one transaction. The protocol and the three gates alone make ${fmtMs(floor)} (${x(floor)}), ${floor > goal ? 'above the goal before the gateway hop' : 'within the goal'}: what is left is durable database work on the push's critical path (ADR 0011 makes the journal row a gate so that a crash never loses a push), ${margin > 3 * m.hookAlone ? `which the goal would need under ${fmtMs(margin - 3 * m.hookAlone)} together with the gateway hop.` : `and the three hook processes alone (3 × ${fmtMs(m.hookAlone)}) already take more than the ${fmtMs(margin)} the protocol leaves, before any of that work or the gateway hop.`}`,
  ];
}

async function main(): Promise<void> {
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'dotgit-push-path-'));
  await fs.chmod(scratch, 0o755); // Postgres runs as user postgres when we are root
  const trace2 = path.join(scratch, 'trace2.json');
  const dataDir = path.join(scratch, 'data');
  progress('starting a platform (compiled)');
  const platform = await startPlatform({
    env: { ...ownPlatformEnv(dataDir, { DOTGIT_RATE_LIMITS: LIMITS_OUT_OF_THE_WAY, LOG_LEVEL: 'info' }), GIT_TRACE2_EVENT: trace2 },
    log: { info: () => undefined, debug: () => undefined, warn: (m) => progress(`warning: ${m}`) },
    ephemeral: true,
  });
  let backend: http.Server | undefined;
  try {
    const api = new Api(platform.gatewayUrl);
    const token = await benchTenant(api, platform.adminToken, OWNER);
    // One repository per platform side: each side pushes every new commit to its own.
    for (const name of ['direct', 'gateway']) await api.call('POST', '/api/v1/repos', token, { owner: OWNER, name, visibility: 'private' });
    const home = path.join(scratch, 'home');
    await fs.mkdir(home, { recursive: true });
    const git = new Git(home);
    const work = path.join(scratch, 'work');
    await git.run(['init', '--quiet', '--initial-branch=main', work]);
    await fs.mkdir(path.join(work, '.dotgit'), { recursive: true });
    await fs.writeFile(path.join(work, '.dotgit', 'pipeline.yml'), 'jobs:\n  bench:\n    steps:\n      - name: noop\n        run: "true"\n');
    await git.run(['add', '-A'], work);
    await git.run(['commit', '--quiet', '-m', 'pipeline'], work);
    const peers = path.join(scratch, 'peers');
    const local = path.join(peers, 'local.git');
    const cgi = path.join(peers, 'cgi.git');
    for (const dir of [local, cgi]) {
      await git.run(['init', '--bare', '--quiet', '--initial-branch=main', dir]);
      await git.run(['--git-dir', dir, 'config', 'receive.fsckObjects', 'true']);
    }
    backend = await startHttpBackend(peers);
    const backendUrl = `http://127.0.0.1:${(backend.address() as AddressInfo).port}/cgi.git`;
    const secret = platform.serviceEnv.DOTGIT_INTERNAL_SECRET!;
    const principal = await adminPrincipal(platform.databaseUrl);
    const direct = `http://${platform.serviceEnv.DOTGIT_INTERNAL_HOST || '127.0.0.1'}:${platform.serviceEnv.DOTGIT_GIT_PORT}/${OWNER}/direct.git`;
    const viaGateway = api.cloneUrl(OWNER, 'gateway', token);

    // The runs the platform's pushes started: each is waited for before the next push, so no side
    // is timed while the previous side's run (a sandbox start) takes the cores.
    const started: string[] = [];
    const runsFinished = async () => {
      for (const id of started.splice(0)) {
        for (const deadline = Date.now() + 60_000; ; await sleep(50)) {
          const run = await api.call<{ status: string }>('GET', `/api/v1/runs/${encodeURIComponent(id)}`, token);
          if (['success', 'failure', 'cancelled'].includes(run.status)) break;
          if (Date.now() > deadline) throw new Error(`run ${id} not finished within 60 s`);
        }
      }
    };
    const sides = {
      local: async () => (await git.run(['push', '--quiet', local, 'main'], work)).ms,
      'http-backend': async () => (await git.run(['push', '--quiet', backendUrl, 'main'], work)).ms,
      'git-server': async () => {
        const jwt = await signIdentity(secret, principal, `bench-push-${Date.now()}`);
        const r = await git.run(['-c', `http.extraHeader=${IDENTITY_HEADER}: ${jwt}`, 'push', direct, 'main'], work);
        const runs = runIdsFrom(r.stderr + r.stdout);
        if (runs.length !== 1) throw new Error(`the direct push announced no run: ${r.stderr}`);
        started.push(runs[0]);
        return r.ms;
      },
      gateway: async () => {
        const r = await git.run(['push', viaGateway, 'main'], work);
        const runs = runIdsFrom(r.stderr + r.stdout);
        if (runs.length !== 1) throw new Error(`the push announced no run: ${r.stderr}`);
        started.push(runs[0]);
        return r.ms;
      },
    };
    type Side = keyof typeof sides;
    const order = Object.keys(sides) as Side[];
    const times: Record<Side, number[]> = { local: [], 'http-backend': [], 'git-server': [], gateway: [] };
    const parts: Record<string, number[]> = {};
    // Warm-up: each side once (the platform's first run also self-tests the sandbox).
    for (const side of order) await sides[side]();
    await runsFinished();
    await sleep(1000);
    for (let round = 0; round < ROUNDS; round++) {
      // Every side pushes the same new commit (each remote holds the previous one).
      await git.run(['commit', '--quiet', '--allow-empty', '-m', `bench ${round}`], work);
      const rotated = [...order.slice(round % order.length), ...order.slice(0, round % order.length)];
      for (const side of rotated) {
        const from = (await fs.stat(trace2).catch(() => ({ size: 0 }))).size;
        times[side].push(await sides[side]());
        if (side === 'git-server' || side === 'gateway') {
          for (const [part, ms] of Object.entries(await gitTimes(trace2, from))) (parts[part] ??= []).push(ms);
        }
        await runsFinished();
        await sleep(200); // what a run leaves (its records, the worker's clean-up) settles
      }
      progress(`round ${round + 1}/${ROUNDS}: ${order.map((s) => `${s} ${fmtMs(times[s].at(-1)!)}`).join(', ')}`);
    }
    const median = (s: Side) => stats(times[s]).median;
    const hookAlone = stats(await hookAloneMs(20));
    const lines = [
      PUSH_PATH_HEADING,
      '',
      'Reproduce with `node --import tsx bench/push-path.ts` (`BENCH_PUSH_PATH_ROUNDS`, default 7; a compiled platform of its own; rewrites only this section). The same one-commit push, in rotating order each round, to: a local bare repository over the file transport (the peer), `git http-backend` behind a bare Node CGI bridge (smart HTTP with nothing of ours), the git-server straight (the signed identity the gateway would add), and the gateway (an API token, as users push). The platform\'s pushes each start a one-step run, which finishes before the next push. Hook times from the git-server\'s receive-pack trace2 events (`GIT_TRACE2_EVENT`), over both platform sides.',
      '',
      `- date: ${new Date().toISOString()}; ${os.cpus().length} cores; load average at the end ${os.loadavg().map((l) => l.toFixed(2)).join('/')}`,
      '',
      '| push of one commit | median (min–max) | ÷ local |',
      '|---|---|---|',
      ...order.map((s) => `| ${s} | ${fmtStats(stats(times[s]))} | ${(median(s) / median('local')).toFixed(2)}× |`),
      '',
      '| inside the git-server, per platform push (trace2) | median (min–max) |',
      '|---|---|',
      ...Object.entries(parts).sort().map(([part, ms]) => `| ${part} | ${fmtStats(stats(ms))} |`),
      `| … of which a hook's own process (the post-receive script, its channel answered at once; 20 runs) | ${fmtStats(hookAlone)} |`,
      '',
      ...boundText({ local: median('local'), protocol: median('http-backend'), gitServer: median('git-server'), gateway: median('gateway'), hookAlone: hookAlone.median, hooks: Object.entries(parts).filter(([k]) => k.startsWith('hook ')).reduce((sum, [, ms]) => sum + stats(ms).median, 0) }),
      '',
    ];
    const section = lines.join('\n');
    console.log(section);
    if (process.env.BENCH_NO_WRITE !== '1') {
      const file = path.join(ROOT, 'BENCHMARKS.md');
      await fs.writeFile(file, replaceSection(await fs.readFile(file, 'utf8'), PUSH_PATH_HEADING, section));
    }
  } finally {
    backend?.close();
    await platform.stop();
    await RunscDriver.releaseState(path.join(dataDir, 'sandbox'));
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
