/**
 * Issue 16's clone-storm figure through the gateway, as CI clones:
 *
 *   node --import tsx bench/clone-storm.ts      (BENCH_STORM_ROUNDS, default 3)
 *
 * On a platform of its own (compiled services), the generated repository (bench/gen-repo.ts,
 * 22.7 MiB pack) is pushed once; a second git-server with DOTGIT_PACK_CACHE=off and a second
 * gateway in front of it only are started beside the platform's. Each round moves `main` to a new
 * commit (the cache starts cold) and starts 20 `git clone --no-checkout` at once through each
 * gateway with one CI token, the two sides alternating first. Measured: every clone succeeds at the
 * new tip, and the CPU (utime+stime, with reaped children: upload-pack, pack-objects) of the
 * gateway plus the git-server of each side, and of the git-server with its children alone.
 * Before the storms, the generated repository is pushed whole to new repositories through the
 * gateway, against `git push` to a local bare repository (BENCH_STORM_PUSHES, default 5).
 * Rewrites only its section of BENCHMARKS.md.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { RunscDriver } from '../activities/sandbox/runsc-driver';
import { LIMITS_OUT_OF_THE_WAY, ownPlatformEnv } from '../infra/own-platform-env';
import { compiledEntry } from '../infra/compiled';
import { startPlatform } from '../infra/platform';
import { startChild, type ManagedChild } from '../infra/provision/child';
import { freePort } from '../infra/provision/free-port';
import { ROOT } from '../infra/root';
import { generateRepo } from './gen-repo';
import { Api, fmtBytes, fmtMs, fmtStats, Git, intEnv, replaceSection, stats } from './lib';
import { cpuMs, cpuTicks, waitForNoChildren } from './proc';

export const STORM_HEADING = '## Clone storm through the gateway (issue 16)';
const ROUNDS = intEnv('BENCH_STORM_ROUNDS', 3, 1, 20);
const CLONES = 20;
const GOAL = 0.3;
/** Issue 16's (and issue 3's) figure for the git-server alone: its Node process and its git children. */
const GIT_SERVER_GOAL = 0.2;
/** Issue 16: the generated repository pushed to a new repository ÷ `git push` to a local bare one. */
const PUSH_GOAL = 1.3;
const PUSHES = intEnv('BENCH_STORM_PUSHES', 5, 1, 20);
const OWNER = 'bench';
const progress = (m: string) => console.log(`bench: ${m}`);

interface Side {
  gatewayUrl: string;
  gatewayPid: number;
  gitPid: number;
  cpu: number[];
  gitOwn: number[];
  gitChildren: number[];
  /** The git-server's Node process plus its git children (issue 3's figure). */
  gitServer: number[];
  gateway: number[];
  wall: number[];
}

interface Pushes {
  ours: number[];
  local: number[];
}

async function main(): Promise<void> {
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'dotgit-bench-storm-'));
  await fs.chmod(scratch, 0o755); // Postgres runs as user postgres when we are root
  const dataDir = path.join(scratch, 'data');
  const quiet = { info: () => undefined, debug: () => undefined, warn: (m: string) => progress(`warning: ${m}`) };
  const platform = await startPlatform({ env: ownPlatformEnv(dataDir, { DOTGIT_RATE_LIMITS: LIMITS_OUT_OF_THE_WAY }), log: quiet, ephemeral: true });
  const children: ManagedChild[] = [];
  try {
    const api = new Api(platform.gatewayUrl);
    await api.call('POST', '/api/v1/tenants', platform.adminToken, { name: OWNER });
    await api.call('POST', `/api/v1/tenants/${OWNER}/users`, platform.adminToken, { username: 'ci', role: 'admin' });
    const token = (await api.call<{ token: string }>('POST', '/api/v1/tokens', platform.adminToken, { username: 'ci', scopes: ['read', 'write', 'admin'] })).token;
    await api.call('POST', '/api/v1/repos', token, { owner: OWNER, name: 'big', visibility: 'private' });
    const home = path.join(scratch, 'home');
    await fs.mkdir(home);
    const git = new Git(home);
    const src = path.join(scratch, 'src.git');
    const generated = await generateRepo(src, git);
    progress(`generated: pack ${fmtBytes(generated.packBytes)}`);
    await git.run(['--git-dir', src, 'push', '--quiet', api.cloneUrl(OWNER, 'big', token), 'main:main']);

    // The generated repository pushed whole to a new repository through the gateway, against the same
    // push to a local bare repository with the server's receive.fsckObjects (issue 16's last figure).
    const pushes: Pushes = { ours: [], local: [] };
    for (let i = 0; i < PUSHES; i++) {
      const name = `push-${i}`;
      await api.call('POST', '/api/v1/repos', token, { owner: OWNER, name, visibility: 'private' });
      const peer = path.join(scratch, `peer-${i}.git`);
      await git.run(['init', '--bare', '--quiet', '--initial-branch=main', peer]);
      await git.run(['--git-dir', peer, 'config', 'receive.fsckObjects', 'true']);
      const jobs = [
        async () => void pushes.ours.push((await git.run(['--git-dir', src, 'push', '--quiet', api.cloneUrl(OWNER, name, token), 'main:main'])).ms),
        async () => void pushes.local.push((await git.run(['--git-dir', src, 'push', '--quiet', peer, 'main:main'])).ms),
      ];
      for (const job of i % 2 === 0 ? jobs : [...jobs].reverse()) await job();
      await fs.rm(peer, { recursive: true, force: true });
      progress(`push ${i + 1}/${PUSHES}: through the gateway ${fmtMs(pushes.ours.at(-1)!)}, local ${fmtMs(pushes.local.at(-1)!)}`);
    }

    // The comparison side: a git-server without the cache and a gateway that sends git traffic to it alone.
    const start = async (name: string, entry: string, env: NodeJS.ProcessEnv, port: string) => {
      const child = await startChild({
        name,
        command: process.execPath,
        args: [compiledEntry(entry)],
        logFile: path.join(dataDir, 'logs', `${name}.log`),
        pidFile: path.join(dataDir, 'run', `${name}.pid`),
        log: quiet,
        env,
        probe: async () => {
          const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(3000) });
          if (!res.ok) throw new Error(`/healthz answered ${res.status}`);
        },
        readyTimeoutMs: 90_000,
        stopGraceMs: 10_000,
      });
      children.push(child);
      return child;
    };
    const gitPort = String(await freePort());
    const gwPort = String(await freePort());
    const noCacheGit = await start('git-server-nocache', 'git-server/main.ts', { ...platform.serviceEnv, DOTGIT_PACK_CACHE: 'off', DOTGIT_GIT_PORT: gitPort }, gitPort);
    const noCacheGw = await start('gateway-nocache', 'gateway/main.ts', { ...platform.serviceEnv, PORT: gwPort, DOTGIT_GIT_UPSTREAMS: `http://127.0.0.1:${gitPort}` }, gwPort);
    const side = (gatewayUrl: string, gatewayPid: number, gitPid: number): Side => ({ gatewayUrl, gatewayPid, gitPid, cpu: [], gitOwn: [], gitChildren: [], gitServer: [], gateway: [], wall: [] });
    const sides = {
      on: side(platform.gatewayUrl, platform.services.get('gateway')!.pid!, platform.services.get('git-server')!.pid!),
      off: side(`http://127.0.0.1:${gwPort}`, noCacheGw.pid, noCacheGit.pid),
    };
    let tips = 0;
    const newTip = async () => {
      const tree = (await git.run(['--git-dir', src, 'rev-parse', 'main^{tree}'])).stdout.trim();
      const commit = (await git.run(['--git-dir', src, 'commit-tree', tree, '-p', 'main', '-m', `storm ${++tips}`])).stdout.trim();
      await git.run(['--git-dir', src, 'update-ref', 'refs/heads/main', commit]);
      await git.run(['--git-dir', src, 'push', '--quiet', api.cloneUrl(OWNER, 'big', token), 'main:main']);
      return commit;
    };
    const storm = async (name: 'on' | 'off', tip: string, count = CLONES) => {
      const s = sides[name];
      const url = new URL(`${s.gatewayUrl}/${OWNER}/big.git`);
      url.username = 'x';
      url.password = token;
      const dests = Array.from({ length: count }, (_, k) => path.join(scratch, `storm-${name}-${k}`));
      await waitForNoChildren(s.gitPid, 10_000);
      const g0 = cpuTicks(s.gatewayPid);
      const s0 = cpuTicks(s.gitPid);
      const t0 = performance.now();
      await Promise.all(dests.map((d) => git.run(['clone', '--quiet', '--no-checkout', url.toString(), d])));
      const wall = performance.now() - t0;
      await waitForNoChildren(s.gitPid, 15_000);
      const g1 = cpuTicks(s.gatewayPid);
      const s1 = cpuTicks(s.gitPid);
      for (const d of dests) {
        const head = (await git.run(['--git-dir', path.join(d, '.git'), 'rev-parse', 'HEAD'])).stdout.trim();
        if (head !== tip) throw new Error(`clone through ${name} has ${head}, expected ${tip}`);
      }
      await Promise.all(dests.map((d) => fs.rm(d, { recursive: true, force: true })));
      const own = (t: typeof s0) => ({ ...t, cutime: 0, cstime: 0 });
      return { gateway: cpuMs(g1) - cpuMs(g0), gitOwn: cpuMs(own(s1)) - cpuMs(own(s0)), gitAll: cpuMs(s1) - cpuMs(s0), wall };
    };
    await storm('off', (await git.run(['--git-dir', src, 'rev-parse', 'main'])).stdout.trim(), 1); // warm-up of the new processes
    for (let r = 0; r < ROUNDS; r++) {
      const tip = await newTip();
      for (const name of (r % 2 === 0 ? ['on', 'off'] : ['off', 'on']) as Array<'on' | 'off'>) {
        const m = await storm(name, tip);
        const s = sides[name];
        s.gateway.push(m.gateway);
        s.gitOwn.push(m.gitOwn);
        s.gitChildren.push(m.gitAll - m.gitOwn);
        s.gitServer.push(m.gitAll);
        s.cpu.push(m.gateway + m.gitAll);
        s.wall.push(m.wall);
        progress(`round ${r + 1}/${ROUNDS} cache ${name}: CPU ${fmtMs(m.gateway + m.gitAll)} (gateway ${fmtMs(m.gateway)}, git-server ${fmtMs(m.gitOwn)} + children ${fmtMs(m.gitAll - m.gitOwn)}), wall ${fmtMs(m.wall)}`);
      }
    }
    const file = path.join(ROOT, 'BENCHMARKS.md');
    await fs.writeFile(file, replaceSection(await fs.readFile(file, 'utf8'), STORM_HEADING, render(sides, pushes, generated.packBytes)));
    progress('BENCHMARKS.md updated');
  } finally {
    for (const c of children) await c.stop().catch(() => undefined);
    await platform.stop();
    await RunscDriver.releaseState(path.join(dataDir, 'sandbox'));
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

function render(sides: { on: Side; off: Side }, pushes: Pushes, packBytes: number): string {
  const ratio = stats(sides.on.cpu).median / stats(sides.off.cpu).median;
  const gitRatio = stats(sides.on.gitServer).median / stats(sides.off.gitServer).median;
  const pushRatio = stats(pushes.ours).median / stats(pushes.local).median;
  const row = (what: string, on: number[], off: number[]) => `| ${what} | ${fmtStats(stats(on))} | ${fmtStats(stats(off))} | ${(stats(on).median / stats(off).median).toFixed(2)} |`;
  return [
    STORM_HEADING,
    '',
    `Reproduce with \`node --import tsx bench/clone-storm.ts\` (\`BENCH_STORM_ROUNDS\`, default 3; a platform of its own, compiled; rewrites only this section). ${CLONES} × \`git clone --no-checkout\` of one new commit started at once through a gateway with one CI token; the pack cache's side is the platform's gateway and git-server, the other a second git-server with \`DOTGIT_PACK_CACHE=off\` behind a second gateway. CPU = utime+stime of the gateway and the git-server, with the git-server's reaped children (upload-pack, pack-objects); medians of ${sides.on.cpu.length} rounds (min–max), the sides alternating first.`,
    '',
    `- date: ${new Date().toISOString()}; ${os.cpus().length} cores; Node ${process.version}; pack ${fmtBytes(packBytes)}; load average at the end ${os.loadavg().map((l) => l.toFixed(2)).join('/')} (other engineers' test runs share the cores)`,
    '',
    '| figure | pack cache on | pack cache off | on ÷ off |',
    '|---|---|---|---|',
    row(`total CPU of gateway + git-server (+ children) for ${CLONES} clones, all succeeded`, sides.on.cpu, sides.off.cpu),
    row('… the gateway', sides.on.gateway, sides.off.gateway),
    row("… the git-server's Node process", sides.on.gitOwn, sides.off.gitOwn),
    row("… the git-server's git children", sides.on.gitChildren, sides.off.gitChildren),
    row('… the git-server with its children (issue 3 and 16: the git-server CPU figure)', sides.on.gitServer, sides.off.gitServer),
    row('wall time until all clones are done (clients on the same cores)', sides.on.wall, sides.off.wall),
    '',
    `Goal: total CPU with the cache ÷ without ≤ ${GOAL.toFixed(2)}: ${ratio <= GOAL ? '**met**' : '**not met**'} (${ratio.toFixed(2)}).`,
    `Goal: the git-server's CPU (with its children) with the cache ÷ without ≤ ${GIT_SERVER_GOAL.toFixed(2)}: ${gitRatio <= GIT_SERVER_GOAL ? '**met**' : '**not met**'} (${gitRatio.toFixed(2)}).`,
    '',
    `Push of the generated repository (pack ${fmtBytes(packBytes)}) to a new repository, ${pushes.ours.length} pushes alternating with the peer:`,
    '',
    '| figure | through the gateway | `git push` to a local bare repository (receive.fsckObjects) | ratio | goal | result |',
    '|---|---|---|---|---|---|',
    `| push of the generated repository | ${fmtStats(stats(pushes.ours))} | ${fmtStats(stats(pushes.local))} | ${pushRatio.toFixed(2)}× | ≤ ${PUSH_GOAL}× | ${pushRatio <= PUSH_GOAL ? '**met**' : '**not met**'} |`,
    '',
  ].join('\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
