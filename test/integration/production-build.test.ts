import { execFile } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { platformInfo } from '../harness/platform-info';
import { tempDir } from '../helpers/git';
import type { TopologyProcess } from '../../infra/topology';
import { semiSpaceFlag } from '../../infra/service-memory';
import type { ServiceRole } from '../../infra/fleet';

// The production build (issue 16 item 1, ADR 0029): the platform's services run the JavaScript
// infra/build.cjs compiled into dist/, the worker loads the prebuilt workflow bundle, and the build
// compiles again only what its sources changed.

const ROOT = path.resolve(__dirname, '..', '..');
const run = promisify(execFile);

test('the shared platform runs the compiled services, each answering /healthz; the worker loads the prebuilt workflow bundle', async () => {
  const info = platformInfo();
  const { processes } = JSON.parse(await fs.readFile(path.join(info.dataDir, 'run', 'topology.json'), 'utf8')) as { processes: TopologyProcess[] };
  const services = processes.filter((p) => ['gateway', 'api', 'git-server', 'worker'].includes(p.role));
  expect(services.map((p) => p.role).sort()).toEqual(['api', 'gateway', 'git-server', 'worker']);
  for (const p of services) {
    const argv = readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    // Plain node on the compiled file: no tsx loader, no TypeScript at run time.
    expect({ role: p.role, argv: argv.slice(1) }).toEqual({ role: p.role, argv: [path.join(ROOT, 'dist', p.role, 'main.js')] });
    // Lean memory (ADR 0029): a small V8 young generation and few malloc arenas in every service;
    // the gateway's young generation is larger (ADR 0041: it allocates on every request's path).
    const environ = readFileSync(`/proc/${p.pid}/environ`, 'utf8').split('\0');
    const flag = semiSpaceFlag(p.role as ServiceRole);
    expect({ role: p.role, semiSpace: environ.find((e) => e.startsWith('NODE_OPTIONS='))?.slice('NODE_OPTIONS='.length).split(' ').filter((o) => o.includes('--max-semi-space-size')) }).toEqual({ role: p.role, semiSpace: [flag] });
    expect(environ).toContain('MALLOC_ARENA_MAX=2');
    const health = await fetch(`http://127.0.0.1:${p.port}/healthz`);
    expect({ role: p.role, status: health.status }).toEqual({ role: p.role, status: 200 });
  }
  // Each start of the worker logs where its workflow code came from; every one used the bundle.
  const log = await fs.readFile(path.join(info.dataDir, 'logs', 'worker.log'), 'utf8');
  const lines = log.split('\n').filter((l) => l.includes('"msg":"workflow code'));
  expect(lines.length).toBeGreaterThan(0);
  for (const line of lines) {
    const entry = JSON.parse(line) as { msg: string; workflowBundle?: string };
    expect(entry).toMatchObject({ msg: 'workflow code: prebuilt bundle', workflowBundle: path.join(ROOT, 'dist', 'workflows.js') });
  }
});

test('the build compiles what changed: nothing when its sources are unchanged, the services alone for a service file, the workflow bundles for a workflow file', async () => {
  // A copy of the tree's sources with the dist/ the platform's start just made: the stamp names
  // inputs by relative path and content, so the copy starts up to date.
  const dir = tempDir('dotgit-build-');
  try {
    for (const d of ['activities', 'api', 'core', 'gateway', 'git-server', 'infra', 'temporal-config', 'workflows', 'worker', 'migrations', 'console', 'dist']) await fs.cp(path.join(ROOT, d), path.join(dir, d), { recursive: true });
    for (const f of ['package.json', 'package-lock.json', 'tsconfig.json']) await fs.copyFile(path.join(ROOT, f), path.join(dir, f));
    await fs.symlink(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
    const build = async () => (await run(process.execPath, [path.join(dir, 'infra', 'build.cjs'), '--verbose'], { cwd: dir })).stdout;
    // Whatever changed in the shared tree since the platform started is compiled now; then nothing is.
    await build();
    expect(await build()).toMatch(/^dotgit: build up to date \(checked in \d+ ms\)\n$/);

    const app = path.join(dir, 'gateway', 'app.ts');
    await fs.appendFile(app, '\n(globalThis as Record<string, unknown>).buildProbe = "compiled-after-change";\n');
    const services = await build();
    expect(services).toMatch(/entry points compiled/);
    expect(services).not.toMatch(/workflow bundles/);
    expect(await fs.readFile(path.join(dir, 'dist', 'gateway', 'main.js'), 'utf8')).toContain('compiled-after-change');
    expect(await build()).toMatch(/up to date/);

    await fs.appendFile(path.join(dir, 'workflows', 'index.ts'), '\n(globalThis as Record<string, unknown>).workflowProbe = "bundled-after-change";\n');
    const workflows = await build();
    expect(workflows).toMatch(/workflow bundles made/);
    expect(workflows).not.toMatch(/entry points compiled/);
    for (const bundle of ['workflows.js', 'workflows-traced.js']) expect(await fs.readFile(path.join(dir, 'dist', bundle), 'utf8')).toContain('bundled-after-change');
    // The traced bundle carries the OpenTelemetry workflow interceptors; the plain one does not.
    expect(await fs.readFile(path.join(dir, 'dist', 'workflows-traced.js'), 'utf8')).toContain('OpenTelemetryInboundInterceptor');
    expect(await fs.readFile(path.join(dir, 'dist', 'workflows.js'), 'utf8')).not.toContain('OpenTelemetryInboundInterceptor');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}, 120_000);
