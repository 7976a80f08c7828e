import { execFile } from 'node:child_process';
import { access, chmod, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { silentLog, type ProvisionLog } from './log';
import { findOnPath } from './which';

const execFileAsync = promisify(execFile);

/** The Helm release the chart (infra/helm/dotgit) is rendered and checked with. */
export const HELM_VERSION = 'v3.22.0';

export interface EnsureHelmOptions {
  /** Where provisioned tools live (the project's `.tools`). */
  toolsDir: string;
  log?: ProvisionLog;
}

/**
 * A `helm` binary of HELM_VERSION: `<toolsDir>/helm/<version>/helm`, built once from the Go module
 * proxy as gVisor is (no release download: this machine reaches package registries only), about two
 * minutes on 2 cores, then reused. Built in a temp dir and renamed, so an interrupted build leaves
 * nothing half-written. Throws when `go` is missing or the build fails, saying which.
 */
export async function ensureHelm({ toolsDir, log = silentLog }: EnsureHelmOptions): Promise<string> {
  const target = path.join(toolsDir, 'helm', HELM_VERSION, 'helm');
  if (await exists(target)) return target;
  const go = findOnPath('go', ['/usr/local/go/bin']);
  if (!go) throw new Error('helm: `go` is not installed, so helm cannot be built (the chart tests need it)');
  await mkdir(path.dirname(target), { recursive: true });
  const tmp = await mkdtemp(path.join(path.dirname(target), '.build-'));
  try {
    log.info(`helm: building helm ${HELM_VERSION} with ${go} (one-off, about 2 minutes)`);
    await execFileAsync(go, ['install', '-trimpath', '-ldflags=-s -w', `helm.sh/helm/v3/cmd/helm@${HELM_VERSION}`], {
      env: { ...process.env, GOBIN: tmp, CGO_ENABLED: '0', GOFLAGS: '-mod=mod' },
      maxBuffer: 16 * 1024 * 1024,
    }).catch((err: Error & { stderr?: string }) => {
      throw new Error(`helm: go install failed: ${(err.stderr ?? err.message).trim().split('\n').slice(-5).join(' | ')}`, { cause: err });
    });
    await chmod(path.join(tmp, 'helm'), 0o755);
    await rename(path.join(tmp, 'helm'), target);
    return target;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}
