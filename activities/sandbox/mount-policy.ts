/**
 * What a sandboxed step sees of the host, shared by the runsc and bwrap drivers so both expose
 * exactly the same filesystem: the toolchain read-only, a generated /etc, the workspace
 * read-write, a private /tmp. Nothing else: no /root, no /home, no project checkout, no .data.
 */
import { existsSync, lstatSync, readlinkSync } from 'node:fs';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Where the workspace appears inside the sandbox; also the command's working directory. */
export const WORKSPACE_IN_SANDBOX = '/workspace';
/** Where the job's artifact directory appears: kept across the job's steps, uploaded after its last one. */
export const ARTIFACTS_IN_SANDBOX = '/artifacts';

/** The unprivileged account steps run as (see docs/decisions/0002-sandbox.md). */
export const SANDBOX_UID = 1000;
export const SANDBOX_GID = 1000;

/** Top-level toolchain paths. On merged-/usr systems most are symlinks into /usr. */
const TOOLCHAIN_ROOTS = ['/usr', '/bin', '/sbin', '/lib', '/lib64', '/lib32', '/libx32'];

export type ToolchainEntry =
  | { kind: 'bind'; path: string }
  /** Recreated as the same relative symlink, so /bin -> usr/bin keeps working without a mount. */
  | { kind: 'symlink'; path: string; target: string };

/** The host's toolchain layout; missing roots (e.g. /lib32) are skipped. */
export function toolchainEntries(): ToolchainEntry[] {
  const entries: ToolchainEntry[] = [];
  for (const root of TOOLCHAIN_ROOTS) {
    let st;
    try {
      st = lstatSync(root);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) {
      const target = readlinkSync(root);
      // Only a relative link into /usr is safe to recreate; anything else is bound as a directory.
      if (!path.isAbsolute(target) && path.resolve('/', target).startsWith('/usr/')) {
        entries.push({ kind: 'symlink', path: root, target });
        continue;
      }
    }
    if (existsSync(root)) entries.push({ kind: 'bind', path: root });
  }
  return entries;
}

/** Host /etc subtrees bound read-only into the curated /etc: CA certificates, and the alternatives
 * links that /usr/bin/awk, /usr/bin/editor, java, etc. point through. */
export function etcBinds(): string[] {
  return ['/etc/ssl/certs', '/etc/alternatives'].filter((p) => existsSync(p));
}

/** Non-secret host files copied into the curated /etc when present. ld.so.cache lets the dynamic
 * loader find libraries outside the default paths; the rest is what common tools read. */
const ETC_COPIES = ['ld.so.cache', 'protocols', 'services', 'os-release', 'debian_version', 'ssl/openssl.cnf'];

/**
 * Writes a fresh /etc into `dir`: account databases with the sandbox user, hosts, nsswitch, and empty
 * directories serving as mount points for {@link etcBinds}. Nothing is taken from the host's /etc
 * except the allowlisted files above (no shadow, no ssh keys, no ssl/private, no gitconfig).
 */
export async function writeCuratedEtc(dir: string): Promise<void> {
  await mkdir(path.join(dir, 'ssl'), { recursive: true });
  const files: Record<string, string> = {
    passwd:
      'root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n' +
      `dotgit:x:${SANDBOX_UID}:${SANDBOX_GID}:dotgit sandbox:/tmp:/bin/sh\n` +
      'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
    group: `root:x:0:\ndotgit:x:${SANDBOX_GID}:\nnogroup:x:65534:\n`,
    hosts: '127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n',
    hostname: 'sandbox\n',
    'nsswitch.conf':
      'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n' +
      'protocols: files\nservices: files\nethers: files\nrpc: files\n',
    // No network by default; an empty resolver config makes lookups fail fast instead of hanging.
    'resolv.conf': '',
  };
  await Promise.all(Object.entries(files).map(([name, text]) => writeFile(path.join(dir, name), text, { mode: 0o644 })));
  await Promise.all(
    ETC_COPIES.map((rel) => copyFile(path.join('/etc', rel), path.join(dir, rel)).catch(() => undefined)),
  );
  for (const bind of etcBinds()) await mkdir(path.join(dir, path.relative('/etc', bind)), { recursive: true });
}

/** The step's environment: a fixed PATH and HOME, overridden by what the pipeline asked for.
 * Nothing comes from the worker's own environment. */
export function sandboxEnv(env: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/tmp' };
  for (const [name, value] of Object.entries(env)) {
    // A name with "=" or a NUL anywhere would be split or truncated differently by each layer.
    if (name === '' || name.includes('=') || name.includes('\0') || value.includes('\0')) {
      throw new TypeError(`invalid environment variable name or value: ${JSON.stringify(name)}`);
    }
    out[name] = value;
  }
  return out;
}
