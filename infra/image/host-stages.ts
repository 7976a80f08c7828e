/**
 * What this machine already has that the Dockerfile's stages would make again (ADR 0042): the
 * production build's dist/ (the `build` stage: a full `npm ci` and `node infra/build.cjs` in the
 * container) and the pinned runsc the platform built (the `runsc` stage: a Go base image and gVisor
 * compiled from the Go proxy, the slowest part of a cold build). buildah's `--build-context
 * <stage>=<dir>` stands in a directory for a stage of that name, so the Dockerfile stays the one
 * recipe and elsewhere builds them itself. Both are the same artefacts: build.cjs is what the stage
 * runs, and the platform builds runsc with the stage's flags (static, -trimpath, version stamped).
 *
 * Also the machine's caches the RUN steps may use: npm's cache (the clone's `npm ci` filled it)
 * and an apt archive directory that outlives buildah's storage.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, link, mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { GVISOR_GO_VERSION, provisionedRunscPath } from '../../activities/sandbox/locate';
import { BUILD_DIR, ensureBuilt } from '../compiled';
import type { ProvisionLog } from '../provision/log';
import { ROOT } from '../root';

const execFileAsync = promisify(execFile);

/** Where the stand-in stages are laid out, each as the stage's root filesystem would hold it. */
const STAGES_DIR = path.join(ROOT, '.data', 'image-stages');
/** Debian packages downloaded by mmdebstrap and the RUN steps' apt-get: the machine's, not a clone's. */
export const APT_ARCHIVE_CACHE = '/var/cache/dotgit-image/apt-archives';
/** Where the RUN steps see the machine's npm cache (the Dockerfile's NPM_CONFIG_CACHE build arg). */
const BUILD_NPM_CACHE = '/run/host-npm-cache';

export interface HostStages {
  /** `--build-context` arguments: the stages this machine stands in for. */
  contexts: string[];
  /** Which stages those are (`build`, `runsc`). */
  stages: string[];
}

/**
 * Lays out dist/ (built first: only what changed) as the `build` stage's /app/dist, and the pinned
 * runsc, when this machine has it at the Dockerfile's version, as the `runsc` stage's /out/runsc.
 */
export async function hostStages(log: ProvisionLog): Promise<HostStages> {
  await ensureBuilt(log);
  await rm(STAGES_DIR, { recursive: true, force: true });
  const contexts: string[] = [];
  const stages: string[] = [];

  // A copy, not links: build.cjs rewrites its outputs in place, under a build reading them.
  const dist = path.join(STAGES_DIR, 'build', 'app', 'dist');
  await cp(BUILD_DIR, dist, { recursive: true, filter: (src) => !src.endsWith('.build.lock') });
  contexts.push('--build-context', `build=${path.dirname(path.dirname(dist))}`);
  stages.push('build');

  const runsc = provisionedRunscPath();
  if (await runscVersionIs(runsc, GVISOR_GO_VERSION)) {
    const out = path.join(STAGES_DIR, 'runsc', 'out');
    await mkdir(out, { recursive: true });
    // A link is safe here: the platform replaces runsc by rename, never in place.
    await link(runsc, path.join(out, 'runsc')).catch(() => cp(runsc, path.join(out, 'runsc')));
    contexts.push('--build-context', `runsc=${path.dirname(out)}`);
    stages.push('runsc');
  } else {
    log.info(`image: no runsc ${GVISOR_GO_VERSION} at ${runsc}; the Dockerfile's runsc stage builds it`);
  }
  return { contexts, stages };
}

async function runscVersionIs(runsc: string, version: string): Promise<boolean> {
  if (!existsSync(runsc)) return false;
  return execFileAsync(runsc, ['--version'], { timeout: 10_000 }).then(
    ({ stdout }) => stdout.includes(`runsc version ${version}`),
    () => false,
  );
}

/**
 * `--volume` and `--build-arg` arguments that give the RUN steps the machine's npm cache (npm ci
 * then fetches only what the clone's own install did not) and its apt archive cache.
 */
export async function hostCacheArgs(): Promise<string[]> {
  const args: string[] = [];
  const npmCache = process.env.npm_config_cache ?? path.join(os.homedir(), '.npm');
  if (existsSync(npmCache)) {
    args.push('--volume', `${npmCache}:${BUILD_NPM_CACHE}`, '--build-arg', `NPM_CONFIG_CACHE=${BUILD_NPM_CACHE}`, '--build-arg', 'NPM_CONFIG_PREFER_OFFLINE=true');
  }
  await mkdir(APT_ARCHIVE_CACHE, { recursive: true });
  args.push('--volume', `${APT_ARCHIVE_CACHE}:/var/cache/apt/archives`);
  return args;
}
