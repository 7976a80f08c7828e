import { aptInstall } from './apt';
import { ToolInstallError } from './errors';
import type { ProvisionLog } from './log';
import { findOnPath } from './which';

/**
 * The tools that build and start dotgit's image without a Docker engine or a container registry
 * (ADR 0033): Debian's buildah (builds the Dockerfile), podman (runs the image with its entry point)
 * and mmdebstrap (makes the Debian base root filesystem from the apt mirror, since no registry is
 * reachable to pull one from). runc is the OCI runtime both are told to use (infra/image/build.ts):
 * Debian's crun 1.8 refuses this machine's hybrid cgroup v1/v2 layout.
 */
export interface ContainerTools {
  buildah: string;
  podman: string;
  mmdebstrap: string;
  /** The OCI runtime both are told to use. */
  runc: string;
}

const PACKAGES: Record<keyof ContainerTools, string> = { buildah: 'buildah', podman: 'podman', mmdebstrap: 'mmdebstrap', runc: 'runc' };
// newuidmap/newgidmap, which buildah and podman expect.
const EXTRA_PACKAGES = ['uidmap'];

let installing: Promise<ContainerTools> | undefined;

/**
 * Paths of buildah, podman, mmdebstrap and runc, installing the Debian packages that are missing with
 * apt-get (once per process; as root). Throws ToolInstallError when one cannot be installed.
 */
export function ensureContainerTools(log: ProvisionLog): Promise<ContainerTools> {
  const found = find();
  if (found) return Promise.resolve(found);
  return (installing ??= install(log).finally(() => (installing = undefined)));
}

function find(): ContainerTools | null {
  const tools = Object.fromEntries(Object.keys(PACKAGES).map((name) => [name, findOnPath(name, ['/usr/bin', '/usr/sbin'])]));
  return Object.values(tools).every((p) => p !== null) ? (tools as unknown as ContainerTools) : null;
}

async function install(log: ProvisionLog): Promise<ContainerTools> {
  const missing = Object.entries(PACKAGES)
    .filter(([name]) => !findOnPath(name, ['/usr/bin', '/usr/sbin']))
    .map(([, pkg]) => pkg);
  log.info(`container tools: installing the Debian packages ${missing.join(' ')}`);
  if (!(await aptInstall([...missing, ...EXTRA_PACKAGES], log))) {
    throw new ToolInstallError(`apt-get install ${missing.join(' ')} failed (see the log above); install them (Debian: buildah podman mmdebstrap runc)`);
  }
  const tools = find();
  if (!tools) throw new ToolInstallError(`apt-get installed ${missing.join(' ')}, but buildah, podman, mmdebstrap or runc is still not on PATH`);
  return tools;
}
