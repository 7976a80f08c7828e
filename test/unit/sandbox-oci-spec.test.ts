import { buildOciSpec, DEFAULT_LIMITS } from '../../activities/sandbox/runsc-spec';
import { shellArgv } from '../../activities/sandbox/sandbox-driver';

interface Spec {
  process: { user: { uid: number }; args: string[]; env: string[]; cwd: string; noNewPrivileges: boolean };
  root: { readonly: boolean };
  mounts: { destination: string; source: string; options: string[] }[];
  linux: { resources: { memory: { limit: number } } };
}

const spec = buildOciSpec({
  argv: shellArgv({ command: 'make test' }),
  env: { PATH: '/usr/bin:/bin', HOME: '/tmp', CI: 'true' },
  rootfs: '/state/b/rootfs',
  etcDir: '/state/b/etc',
  etcBinds: ['/etc/ssl/certs'],
  toolchain: [{ kind: 'bind', path: '/usr' }, { kind: 'symlink', path: '/bin', target: 'usr/bin' }],
  workspace: '/data/ws/1',
  uid: 1000,
  gid: 1000,
  limits: DEFAULT_LIMITS,
}) as Spec;

test('only the workspace is writable; the root and the toolchain are read-only', () => {
  expect(spec.root.readonly).toBe(true);
  const binds = spec.mounts.filter((m) => m.source.startsWith('/'));
  const writable = binds.filter((m) => !m.options.includes('ro'));
  expect(writable.map((m) => [m.source, m.destination])).toEqual([['/data/ws/1', '/workspace']]);
  expect(binds.map((m) => m.destination).sort()).toEqual(['/etc', '/etc/ssl/certs', '/usr', '/workspace']);
});

test('nothing of the host home, data or checkout is mounted', () => {
  const sources = spec.mounts.map((m) => m.source);
  for (const forbidden of ['/root', '/home', '/work', '/etc/shadow']) {
    expect(sources.some((s) => s === forbidden || s.startsWith(`${forbidden}/`))).toBe(false);
  }
});

test('runs the command with sh -e as an unprivileged user, in /workspace, with only the given env', () => {
  expect(spec.process.args).toEqual(['/bin/sh', '-e', '-c', 'make test']);
  expect(spec.process.user.uid).toBe(1000);
  expect(spec.process.noNewPrivileges).toBe(true);
  expect(spec.process.cwd).toBe('/workspace');
  expect(spec.process.env).toEqual(['PATH=/usr/bin:/bin', 'HOME=/tmp', 'CI=true']);
  expect(spec.linux.resources.memory.limit).toBe(DEFAULT_LIMITS.memoryBytes);
});
