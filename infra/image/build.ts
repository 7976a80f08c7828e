/**
 * `npm run image`: builds dotgit's image from the Dockerfile with buildah (ADR 0033, ADR 0042) — the
 * `app` target (gateway, api, git-server, orchestration and storage workers, migrate) and the
 * `sandbox` target (sandbox workers: also git-lfs, bubblewrap and runsc). Both carry the production
 * build (dist/) and `npm ci --omit=dev`, and run as user 10001. Without `--registry-bases`, the
 * Dockerfile's node base is made on this machine (infra/image/base.ts), since no container
 * registry is reachable here; with it, the bases are pulled. Without `--from-source`, the `build`
 * and `runsc` stages are this machine's dist/ and pinned runsc (infra/image/host-stages.ts).
 *
 *   npm run image [-- --target app|sandbox|all] [--tag <repository>] [--registry-bases]
 *                 [--from-source] [--prepare] [--no-prune]
 *
 * Tags `<repository>:app` and `<repository>:sandbox` (default repository `localhost/dotgit`).
 * buildah's layer cache makes a second build cheap: only the layers whose inputs changed are made;
 * after each build the layers no build of this tree uses are removed (infra/image/prune.ts).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import { Command, Option } from 'commander';
import { ensureContainerTools, type ContainerTools } from '../provision/container-tools';
import { silentLog, type ProvisionLog } from '../provision/log';
import { ROOT } from '../root';
import { ensureBaseImages } from './base';
import { hostCacheArgs, hostStages } from './host-stages';
import { pruneAfterBuild, stepImageIds } from './prune';

export const IMAGE_TARGETS = ['app', 'sandbox'] as const;
export type ImageTarget = (typeof IMAGE_TARGETS)[number];
export const DEFAULT_IMAGE_REPOSITORY = 'localhost/dotgit';
/**
 * This machine's CA bundle, which its npm and go trust (/etc/npmrc's cafile): the way to the package
 * registries here re-signs TLS. The build's npm and go get it mounted at BUILD_CA_BUNDLE (the
 * Dockerfile's NPM_CONFIG_CAFILE and SSL_CERT_FILE build args); no layer keeps it.
 */
const MACHINE_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
const BUILD_CA_BUNDLE = '/run/build-ca.pem';

export interface BuildImageOptions {
  targets?: readonly ImageTarget[];
  repository?: string;
  /** Use the Dockerfile's registry base images instead of the ones made here. */
  registryBases?: boolean;
  /** Build every stage from the Dockerfile, none from this machine's dist/ and runsc. */
  fromSource?: boolean;
  /** Only the stages that need neither dist/ nor runsc (bases, node_modules, Debian packages): a head start. */
  prepareOnly?: boolean;
  /** Remove the layers and bases no build of this tree uses (default true). */
  prune?: boolean;
  log?: ProvisionLog;
  /** Show buildah's output as it builds (the CLI does); otherwise only its tail on failure. */
  stream?: boolean;
}

export interface BuildStep {
  target: string;
  step: string;
  seconds: number;
}

export interface BuiltImages {
  tools: ContainerTools;
  /** Image name by target, e.g. `{ app: 'localhost/dotgit:app' }`. */
  images: Partial<Record<ImageTarget, string>>;
  /** Stages this machine stood in for (`build`, `runsc`). */
  hostStages: string[];
  /** Every step of every `buildah bud`, with how long it took (cached ones about 0). */
  steps: BuildStep[];
  /** Seconds: bases, the head-start stages, the targets, the prune. */
  phases: Record<'bases' | 'prepare' | 'targets' | 'prune', number>;
  /** Untagged images left in buildah's storage after the prune: this build's cached steps. */
  cached: string[];
}

/**
 * What the containers run with on this machine (buildah's RUN steps and podman alike): runc, since
 * Debian's crun 1.8 refuses the machine's hybrid cgroup v1/v2 layout; and resource limits no
 * higher than this process's hard limits, since root here cannot raise them (no CAP_SYS_RESOURCE)
 * and the OCI defaults (nofile 1048576) are higher.
 */
export function runtimeArgs(): string[] {
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const hard = (label: string, cap: number) => {
    const value = new RegExp(`^${label}\\s+\\S+\\s+(\\S+)`, 'm').exec(limits)?.[1];
    return value === undefined || value === 'unlimited' ? cap : Math.min(cap, Number(value));
  };
  const nofile = hard('Max open files', 1_048_576);
  const nproc = hard('Max processes', 32_768);
  return ['--runtime', 'runc', '--ulimit', `nofile=${nofile}:${nofile}`, '--ulimit', `nproc=${nproc}:${nproc}`];
}

/**
 * Builds the targets (default both) and returns their names. Throws with buildah's last lines on
 * failure. In two rounds of concurrent `buildah bud`s: first the stages that need neither dist/ nor
 * runsc (node_modules, the Debian packages), then the targets, which find those in the layer cache.
 */
export async function buildImages({
  targets = IMAGE_TARGETS,
  repository = DEFAULT_IMAGE_REPOSITORY,
  registryBases = false,
  fromSource = false,
  prepareOnly = false,
  prune = true,
  log = silentLog,
  stream = false,
}: BuildImageOptions = {}): Promise<BuiltImages> {
  const tools = await ensureContainerTools(log);
  const release = await buildLock(log);
  try {
    const clock = stopwatch();
    const stages = fromSource || prepareOnly ? { contexts: [], stages: [] } : await hostStages(log);
    const needGo = !prepareOnly && targets.includes('sandbox') && !stages.stages.includes('runsc');
    const bases = registryBases ? undefined : await ensureBaseImages({ tools, cacheDir: path.join(ROOT, '.data', 'image-base'), go: needGo, log });
    const phases = { bases: clock(), prepare: 0, targets: 0, prune: 0 };
    const common = [
      ...(bases ? ['--build-arg', `NODE_IMAGE=${bases.node}`, ...(bases.go ? ['--build-arg', `GO_IMAGE=${bases.go}`] : [])] : []),
      ...(existsSync(MACHINE_CA_BUNDLE)
        ? ['--volume', `${MACHINE_CA_BUNDLE}:${BUILD_CA_BUNDLE}:ro`, '--build-arg', `NPM_CONFIG_CAFILE=${BUILD_CA_BUNDLE}`, '--build-arg', `SSL_CERT_FILE=${BUILD_CA_BUNDLE}`]
        : []),
      ...(fromSource ? [] : await hostCacheArgs()),
      ...stages.contexts,
    ];
    const steps: BuildStep[] = [];
    const outputs: string[] = [];
    const bud = async (stage: string, tag?: string) => {
      const r = await budTarget(tools, [...common, '--target', stage, ...(tag ? ['--tag', tag] : [])], stage, log, stream);
      steps.push(...r.steps);
      outputs.push(r.output);
    };

    // Round 1: node_modules and the Debian layers, side by side (the one is npm, the other apt).
    // `build` only after `deps`: their first steps are the same, and two buds making the same step
    // at once leave two cached copies of it, the next build then finding the one `deps` did not
    // continue from (seen: npm ci --omit=dev ran again in the targets' round).
    const runtime = targets.includes('sandbox') ? 'sandbox-runtime' : 'runtime';
    await Promise.all([bud('deps').then(() => (fromSource && !prepareOnly ? bud('build') : undefined)), bud(runtime)]);
    phases.prepare = clock();
    const images: BuiltImages['images'] = {};
    if (!prepareOnly) {
      await Promise.all(
        targets.map(async (target) => {
          const name = `${repository}:${target}`;
          log.info(`image: building ${name}`);
          await bud(target, name);
          images[target] = name;
        }),
      );
    }
    phases.targets = clock();
    let cached: string[] = [];
    if (prune && !prepareOnly) {
      const keep = outputs.flatMap(stepImageIds);
      cached = (await pruneAfterBuild({ buildah: tools.buildah, keep, bases: bases ? [bases.node, ...(bases.go ? [bases.go] : [])] : [], log })).kept;
    }
    phases.prune = clock();
    const slowest = [...steps].sort((x, y) => y.seconds - x.seconds).slice(0, 5);
    log.info(`image: bases ${phases.bases} s, head start ${phases.prepare} s, targets ${phases.targets} s, prune ${phases.prune} s; slowest steps: ${slowest.map((st) => `${st.target} "${st.step.slice(0, 60)}" ${st.seconds} s`).join('; ')}`);
    return { tools, images, hostStages: stages.stages, steps, phases, cached };
  } finally {
    await release();
  }
}

/** Seconds since the last call (the first: since made). */
function stopwatch(): () => number {
  let last = Date.now();
  return () => {
    const now = Date.now();
    const s = Math.round((now - last) / 100) / 10;
    last = now;
    return s;
  };
}

/** One `buildah bud`, its output kept (for the step ids) and each STEP line timed. */
async function budTarget(tools: ContainerTools, extra: string[], label: string, log: ProvisionLog, stream: boolean): Promise<{ output: string; steps: BuildStep[] }> {
  const args = ['bud', '--layers', '--force-rm', '--network', 'host', ...runtimeArgs(), ...extra, '--file', path.join(ROOT, 'Dockerfile'), ROOT];
  const child = spawn(tools.buildah, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const steps: BuildStep[] = [];
  let current: { step: string; at: number } | undefined;
  const close = () => current && steps.push({ target: label, step: current.step, seconds: Math.round((Date.now() - current.at) / 100) / 10 });
  const lines: string[] = [];
  for (const out of [child.stdout, child.stderr]) {
    readline.createInterface({ input: out }).on('line', (line) => {
      lines.push(line);
      if (stream) process.stdout.write(`[${label}] ${line}\n`);
      const step = /^\[\d+\/\d+\] STEP \d+\/\d+: (.*)$/.exec(line);
      if (step) {
        close();
        current = { step: step[1]!, at: Date.now() };
        log.debug(`image ${label}: ${line}`);
      }
    });
  }
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  close();
  if (code !== 0) throw new Error(`image: buildah bud --target ${label} failed (exit ${code}):\n${lines.slice(-15).join('\n')}`);
  return { output: lines.join('\n'), steps };
}

/** buildah's storage is the machine's: one build at a time, so no prune removes a running build's layers. */
const LOCK_FILE = '/run/lock/dotgit-image-build.lock';

async function buildLock(log: ProvisionLog): Promise<() => Promise<void>> {
  let waited = false;
  for (;;) {
    try {
      const handle = await open(LOCK_FILE, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      return () => rm(LOCK_FILE, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number((await readFile(LOCK_FILE, 'utf8').catch(() => '')).trim());
    if (!holder || !alive(holder)) {
      await rm(LOCK_FILE, { force: true });
      continue;
    }
    if (!waited) log.info(`image: waiting for the build of process ${holder} (${LOCK_FILE})`);
    waited = true;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function main(): Promise<void> {
  const program = new Command('image')
    .description("Builds dotgit's image (Dockerfile targets app and sandbox) with buildah")
    .addOption(new Option('--target <target>', 'which image').choices([...IMAGE_TARGETS, 'all']).default('all'))
    .option('--tag <repository>', 'repository to tag <repository>:<target> in', DEFAULT_IMAGE_REPOSITORY)
    .option('--registry-bases', "pull the Dockerfile's base images (node, golang) instead of making them here", false)
    .option('--from-source', "build the Dockerfile's build and runsc stages too, instead of using this machine's dist/ and runsc", false)
    .option('--prepare', 'only the stages that need neither dist/ nor runsc (a head start for a later build)', false)
    .option('--no-prune', 'keep the layers no build of this tree uses')
    .option('--quiet', "buildah's output only on failure; the timings at the end", false)
    .parse();
  const o = program.opts<{ target: ImageTarget | 'all'; tag: string; registryBases: boolean; fromSource: boolean; prepare: boolean; prune: boolean; quiet: boolean }>();
  const log: ProvisionLog = { info: (m) => console.log(m), warn: (m) => console.warn(m), debug: () => {} };
  const started = Date.now();
  const { images } = await buildImages({
    targets: o.target === 'all' ? IMAGE_TARGETS : [o.target],
    repository: o.tag,
    registryBases: o.registryBases,
    fromSource: o.fromSource,
    prepareOnly: o.prepare,
    prune: o.prune,
    log,
    stream: !o.quiet,
  });
  for (const name of Object.values(images)) console.log(`built ${name}`);
  console.log(`in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

if (require.main === module) {
  main().catch((err: Error) => {
    console.error(err.message);
    process.exit(1);
  });
}
