/**
 * Issue 16's "push of the generated repository ÷ local push" on its own (the full `npm run bench`
 * measures it too, among much else):
 *
 *   node --import tsx bench/generated-push.ts      (BENCH_GENERATED_PUSHES, default 5)
 *
 * Generates the bench repository (bench/gen-repo.ts: 300 commits, ~2,100 files, a 22.7 MiB pack)
 * and pushes it, round by round in alternating order, to a new repository through the gateway of
 * a compiled platform of its own, and to a new local bare repository over the file transport with
 * receive.fsckObjects (the server's setting: the peer) and without. Rewrites only its section of
 * BENCHMARKS.md.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RunscDriver } from '../activities/sandbox/runsc-driver';
import { LIMITS_OUT_OF_THE_WAY, ownPlatformEnv } from '../infra/own-platform-env';
import { ROOT, startPlatform } from '../infra/platform';
import { generateRepo } from './gen-repo';
import { alternate, Api, benchTenant, fmtBytes, fmtMs, fmtRatio, fmtStats, Git, intEnv, replaceSection, stats } from './lib';

export const GENERATED_PUSH_HEADING = '## Push of the generated repository (issue 16)';
const PUSHES = intEnv('BENCH_GENERATED_PUSHES', 5, 1, 50);
const OWNER = 'bench';
/** Issue 16's goal for this figure. */
const GOAL = 1.3;
const progress = (m: string) => console.log(`bench: ${m}`);

async function main(): Promise<void> {
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'dotgit-bench-genpush-'));
  await fs.chmod(scratch, 0o755); // Postgres runs as user postgres when we are root
  const dataDir = path.join(scratch, 'data');
  try {
    const git = new Git(path.join(scratch, 'home'));
    await fs.mkdir(path.join(scratch, 'home'), { recursive: true });
    const src = path.join(scratch, 'src.git');
    const generated = await generateRepo(src, git);
    progress(`generated ${generated.commits} commits, ${generated.files} files, pack ${fmtBytes(generated.packBytes)}`);
    const platform = await startPlatform({
      env: ownPlatformEnv(dataDir, { DOTGIT_RATE_LIMITS: LIMITS_OUT_OF_THE_WAY }),
      log: { info: () => undefined, debug: () => undefined, warn: (m) => progress(`warning: ${m}`) },
      ephemeral: true,
    });
    try {
      const api = new Api(platform.gatewayUrl);
      const token = await benchTenant(api, platform.adminToken, OWNER);
      const push = async (target: string) => (await git.run(['--git-dir', src, 'push', '--quiet', target, 'main:main'])).ms;
      const bare = async (dir: string, fsck: boolean) => {
        await git.run(['init', '--bare', '--quiet', '--initial-branch=main', dir]);
        if (fsck) await git.run(['--git-dir', dir, 'config', 'receive.fsckObjects', 'true']);
        return dir;
      };
      const newRepo = async (name: string) => {
        await api.call('POST', '/api/v1/repos', token, { owner: OWNER, name, visibility: 'private' });
        return api.cloneUrl(OWNER, name, token);
      };
      // Warm-up (page cache, the platform's first push), untimed.
      await push(await newRepo('warm'));
      await push(await bare(path.join(scratch, 'warm.git'), true));
      const ours: number[] = [];
      const peer: number[] = [];
      const vanilla: number[] = [];
      for (let i = 0; i < PUSHES; i++) {
        const url = await newRepo(`push-${i}`);
        const peerDir = await bare(path.join(scratch, `peer-${i}.git`), true);
        const vanillaDir = await bare(path.join(scratch, `vanilla-${i}.git`), false);
        await alternate(i, [async () => void ours.push(await push(url)), async () => void peer.push(await push(peerDir)), async () => void vanilla.push(await push(vanillaDir))]);
        await Promise.all([peerDir, vanillaDir].map((d) => fs.rm(d, { recursive: true, force: true })));
        progress(`push ${i + 1}/${PUSHES}: gateway ${fmtMs(ours.at(-1)!)}, local ${fmtMs(peer.at(-1)!)}, local without fsck ${fmtMs(vanilla.at(-1)!)}`);
      }
      const [o, p, v] = [stats(ours), stats(peer), stats(vanilla)];
      const ratio = o.median / p.median;
      const section = [
        GENERATED_PUSH_HEADING,
        '',
        `Reproduce with \`node --import tsx bench/generated-push.ts\` (\`BENCH_GENERATED_PUSHES\`, default 5; a compiled platform of its own; rewrites only this section). The bench repository (${generated.commits} commits, ${generated.files} files at the tip, pack ${fmtBytes(generated.packBytes)}) pushed whole to a new repository each round, in alternating order: through the gateway with an API token, and over the file transport to a new local bare repository with \`receive.fsckObjects\` (the server's setting: the peer) and without.`,
        '',
        `- date: ${new Date().toISOString()}; ${os.cpus().length} cores; Node ${process.version}; load average at the end ${os.loadavg().map((l) => l.toFixed(2)).join('/')} (other engineers' test runs share the cores)`,
        '',
        '| figure | measured | goal | result |',
        '|---|---|---|---|',
        `| push through the gateway ÷ \`git push\` to a local bare repository (receive.fsckObjects), median of ${PUSHES} | ${fmtRatio(ratio)} (${fmtStats(o)} vs ${fmtStats(p)}) | ≤ ${GOAL}× | ${ratio <= GOAL ? '**met**' : '**not met**'} |`,
        `| … ÷ the same without fsck (what the object check costs the peer) | ${fmtRatio(o.median / v.median)} (vs ${fmtStats(v)}) | — | — |`,
        '',
      ].join('\n');
      console.log(`\n${section}`);
      const file = path.join(ROOT, 'BENCHMARKS.md');
      await fs.writeFile(file, replaceSection(await fs.readFile(file, 'utf8'), GENERATED_PUSH_HEADING, section));
      progress('BENCHMARKS.md updated');
    } finally {
      await platform.stop();
      await RunscDriver.releaseState(path.join(dataDir, 'sandbox'));
    }
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
