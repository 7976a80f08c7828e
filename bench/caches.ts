/**
 * Issue 17's figure "pipeline with a warm cache vs cold", on a platform of its own: a job whose first step builds a fixture of
 * BENCH_CACHE_FILES (default 5000) small files into `vendor/` unless the cache restored it, and whose
 * second step reads one. Each round changes the lock file (a new cache key: cold, the files are
 * built and the cache saved), then pushes a change outside the key (warm: the cache is restored,
 * nothing built). Measured: push → run ended, and the build/restore step alone, per run; the
 * figure is warm ÷ cold of the medians. BENCH_CACHE_ROUNDS (default 3) rounds. Run alone with
 * `BENCH_ONLY=caches npm run bench` (or `node --import tsx bench/caches-main.ts`).
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { LIMITS_OUT_OF_THE_WAY, ownPlatformEnv } from '../infra/own-platform-env';
import { ROOT, startPlatform, type Platform } from '../infra/platform';
import { Api, benchTenant, fmtMs, fmtRatio, fmtStats, Git, intEnv, replaceSection, runIdsFrom, type RunView, sleep, stats } from './lib';

export const CACHES_HEADING = '## Pipeline caches: warm vs cold (issue 17)';
const OWNER = 'bench';
const FILES = intEnv('BENCH_CACHE_FILES', 5000, 100, 100_000);
const ROUNDS = intEnv('BENCH_CACHE_ROUNDS', 3, 1, 20);

const PIPELINE = `jobs:
  deps:
    cache: { key: "deps-\${{ hashFiles('lock.txt') }}", paths: [vendor] }
    steps:
      - name: install
        run: |
          if [ -d vendor ]; then set -- vendor/*/*; echo "restored $# files"; exit 0; fi
          mkdir -p $(seq -f 'vendor/d%g' 0 $((${FILES} / 100)))
          i=0
          while [ $i -lt ${FILES} ]; do echo "package $i" > vendor/d$((i / 100))/f$i.txt; i=$((i + 1)); done
          set -- vendor/*/*; echo "built $# files"
      - name: use
        run: cat vendor/d0/f0.txt
`;

export function replaceCachesSection(doc: string, section: string): string {
  return replaceSection(doc, CACHES_HEADING, section);
}

export async function runCachesBench(progress: (m: string) => void): Promise<string> {
  const dataDir = path.join(ROOT, '.bench-data', `caches-${process.pid}`);
  const scratch = path.join(dataDir, 'bench');
  await fs.rm(dataDir, { recursive: true, force: true });
  await fs.mkdir(path.join(scratch, 'home'), { recursive: true });
  const loadBefore = os.loadavg();
  progress(`caches: starting a platform in ${path.relative(ROOT, dataDir)}`);
  let platform: Platform | undefined;
  try {
    platform = await startPlatform({
      env: ownPlatformEnv(dataDir, { DOTGIT_RATE_LIMITS: LIMITS_OUT_OF_THE_WAY }),
      log: { info: () => undefined, debug: () => undefined, warn: (m: string) => progress(`platform: ${m}`) },
      ephemeral: true,
    });
    const api = new Api(platform.gatewayUrl);
    const token = await benchTenant(api, platform.adminToken, OWNER);
    await api.call('POST', '/api/v1/repos', token, { owner: OWNER, name: 'cached', visibility: 'private' });
    const git = new Git(path.join(scratch, 'home'));
    const work = path.join(scratch, 'cached');
    await git.run(['init', '--quiet', '--initial-branch=main', work]);
    await fs.mkdir(path.join(work, '.dotgit'), { recursive: true });
    await fs.writeFile(path.join(work, '.dotgit', 'pipeline.yml'), PIPELINE);
    const url = api.cloneUrl(OWNER, 'cached', token);

    /** Commits `file`, pushes, waits for the run: its wall time (push → ended) and its install step's time. */
    const run = async (file: string, content: string, expect: string) => {
      await fs.writeFile(path.join(work, file), content);
      await git.run(['add', '-A'], work);
      await git.run(['commit', '--quiet', '-m', `${file}: ${content.trim()}`], work);
      const started = performance.now();
      const push = await git.run(['push', '--quiet', url, 'main'], work);
      const [id] = runIdsFrom(push.stderr);
      if (!id) throw new Error(`the push started no run: ${push.stderr}`);
      for (;;) {
        const r = await api.call<RunView>('GET', `/api/v1/runs/${encodeURIComponent(id)}`, token);
        if (['success', 'failure', 'cancelled'].includes(r.status)) {
          const wallMs = performance.now() - started;
          if (r.status !== 'success') throw new Error(`run ${id} ended ${r.status}: ${r.message}`);
          const log = await (await fetch(`${platform!.gatewayUrl}/api/v1/runs/${encodeURIComponent(id)}/logs?job=deps&step=install`, { headers: { authorization: `Bearer ${token}` } })).text();
          if (!log.includes(expect)) throw new Error(`run ${id}: expected "${expect}" in the install log, got ${log.slice(0, 500)}`);
          const step = r.steps.find((s) => s.name === 'install')!;
          return { wallMs, stepMs: Date.parse(step.finishedAt!) - Date.parse(step.startedAt!) };
        }
        await sleep(100);
      }
    };
    const cold: { wallMs: number; stepMs: number }[] = [];
    const warm: { wallMs: number; stepMs: number }[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      cold.push(await run('lock.txt', `round ${round}\n`, `built ${FILES} files`));
      warm.push(await run('README.md', `round ${round}\n`, `restored ${FILES} files`));
      progress(`caches: round ${round}/${ROUNDS}: cold ${fmtMs(cold.at(-1)!.wallMs)} (install ${fmtMs(cold.at(-1)!.stepMs)}), warm ${fmtMs(warm.at(-1)!.wallMs)} (install ${fmtMs(warm.at(-1)!.stepMs)})`);
    }
    const caches = await api.call<{ caches: { size: number }[] }>('GET', `/api/v1/repos/${OWNER}/cached/caches`, token);
    const size = caches.caches[0]?.size ?? 0;
    const s = (xs: number[]) => stats(xs);
    const coldWall = s(cold.map((c) => c.wallMs));
    const warmWall = s(warm.map((c) => c.wallMs));
    const coldStep = s(cold.map((c) => c.stepMs));
    const warmStep = s(warm.map((c) => c.stepMs));
    return [
      CACHES_HEADING,
      '',
      `Measured ${new Date().toISOString().slice(0, 16)}Z on ${os.cpus().length} cores (load ${loadBefore.map((l) => l.toFixed(1)).join(' ')} before), a platform of its own, runsc; ${ROUNDS} rounds; \`BENCH_ONLY=caches npm run bench\` (bench/caches.ts; also \`node --import tsx bench/caches-main.ts\`).`,
      '',
      '| | cold (key missed: build + save) | warm (key hit: restore) | warm ÷ cold |',
      '|---|---|---|---|',
      `| push → run ended | ${fmtStats(coldWall)} | ${fmtStats(warmWall)} | ${fmtRatio(warmWall.median / coldWall.median)} |`,
      `| the install step (build or restore, with its sandbox) | ${fmtStats(coldStep)} | ${fmtStats(warmStep)} | ${fmtRatio(warmStep.median / coldStep.median)} |`,
      '',
      'Where the time goes: a warm run skips building the files but unpacks the archive, and the sandbox driver hands every restored file to the step\'s user (one lchown each) before the step; with a stand-in build as cheap as shell `echo`s that is most of what a build costs. A real install (downloads, compiles) costs far more per file than unpacking, so its ratio is lower than this fixture\'s.',
      '',
      `The fixture: ${FILES} small files in ${Math.ceil(FILES / 100)} folders, made by a shell loop inside the sandbox (the stand-in for a dependency install, which has no network here); the cache archive is ${size} bytes (tar.gz in the fs object store). Cold runs also save the cache after the job; warm runs save nothing (GitHub's behaviour on a hit). Medians (min–max).`,
      '',
    ].join('\n');
  } finally {
    await platform?.stop().catch(() => undefined);
    await fs.rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
  }
}
