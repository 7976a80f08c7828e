import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { RunscDriver } from '../../activities/sandbox/runsc-driver';
import { LIMITS_OUT_OF_THE_WAY, ownPlatformEnv } from '../../infra/own-platform-env';
import { startPlatform, ROOT, type Platform } from '../../infra/platform';
import { git, localRepo, runIdsFrom } from '../helpers/git';

// Issue 14's traces on a platform of its own, started with OTEL_EXPORTER_OTLP_ENDPOINT pointing at
// a receiver in this test that decodes OTLP/HTTP JSON (what the exporter sends). One push must be
// one trace: the gateway's span, the git-server's receive-pack and post-receive, the workflow the
// outbox relay started (context from the outbox row), its activities and the sandbox step, each
// span's parent inside the trace; the step sees TRACEPARENT and the run's webhook carries it.

interface Span {
  service: string;
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
}

const spans: Span[] = [];
const hooks: Array<{ traceparent?: string; event?: string }> = [];
let receiver: http.Server;
let platform: Platform;
let dataDir: string;
let token: string;

/** OTLP/JSON ids are hex; an exporter set for base64 would send 24/12-character strings. */
const hex = (id: string | undefined) => (!id ? undefined : /^[0-9a-f]+$/i.test(id) ? id.toLowerCase() : Buffer.from(id, 'base64').toString('hex'));

function collect(body: any): void {
  for (const rs of body.resourceSpans ?? []) {
    const service = (rs.resource?.attributes ?? []).find((a: any) => a.key === 'service.name')?.value?.stringValue ?? '?';
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        const parent = hex(s.parentSpanId);
        spans.push({ service, name: s.name, traceId: hex(s.traceId)!, spanId: hex(s.spanId)!, ...(parent && !/^0+$/.test(parent) ? { parentSpanId: parent } : {}) });
      }
    }
  }
}

async function call(method: string, p: string, body?: unknown): Promise<{ status: number; body: any; text: string }> {
  const res = await fetch(`${platform.gatewayUrl}${p}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text, body: (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : text };
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  for (const deadline = Date.now() + timeoutMs; ; await new Promise((r) => setTimeout(r, 250))) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; spans seen: ${spans.map((s) => `${s.service}:${s.name}`).join(', ')}`);
  }
}

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (req.url === '/v1/traces') {
        collect(JSON.parse(text));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        return;
      }
      hooks.push({ traceparent: req.headers.traceparent as string | undefined, event: req.headers['x-github-event'] as string | undefined });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const port = (receiver.address() as AddressInfo).port;
  dataDir = path.join(ROOT, '.test-data', `tracing-platform-${process.pid}`);
  await fs.rm(dataDir, { recursive: true, force: true });
  platform = await startPlatform({
    env: ownPlatformEnv(dataDir, {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      DOTGIT_WEBHOOK_ALLOW_HOSTS: '127.0.0.1',
      DOTGIT_RATE_LIMITS: LIMITS_OUT_OF_THE_WAY,
    }),
    log: { info: () => {}, debug: () => {}, warn: console.warn },
    ephemeral: true,
    // The same platform also shows `--observability`: the runner's own Prometheus (last test).
    observability: true,
  });
  token = platform.adminToken;
  expect((await call('POST', '/api/v1/tenants', { name: 'acme' })).status).toBe(201);
  expect((await call('POST', '/api/v1/tenants/acme/users', { username: 'alice', role: 'admin' })).status).toBe(201);
  const t = await call('POST', '/api/v1/tokens', { username: 'alice', scopes: ['read', 'write', 'admin'] });
  expect(t.status).toBe(201);
  token = t.body.token;
}, 600_000);

afterAll(async () => {
  await platform?.stop();
  receiver?.close();
  await RunscDriver.releaseState(path.join(dataDir, 'sandbox'));
  await fs.rm(dataDir, { recursive: true, force: true });
}, 120_000);

test('one push is one trace: gateway, git-server, workflow, activities and the sandbox step, with parents inside it; the step and webhook get its context', async () => {
  expect((await call('POST', '/api/v1/repos', { owner: 'acme', name: 'traced' })).status).toBe(201);
  const hook = await call('POST', '/api/v1/repos/acme/traced/webhooks', { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, secret: 'a-hook-secret', events: ['workflow_run'] });
  expect(hook.status).toBe(201);
  const work = await localRepo({ '.dotgit/pipeline.yml': 'jobs:\n  build:\n    steps:\n      - name: show\n        run: echo "tp=$TRACEPARENT"\n' });
  const url = new URL(`${platform.gatewayUrl}/acme/traced.git`);
  url.username = 'x';
  url.password = token;
  const push = await git(['push', url.toString(), 'main'], work);
  expect(push.code).toBe(0);
  const [runId] = runIdsFrom(push.stderr);

  const run = await until('the run to end', async () => {
    const r = (await call('GET', `/api/v1/runs/${encodeURIComponent(runId)}`)).body;
    return ['success', 'failure', 'cancelled'].includes(r?.status) ? r : undefined;
  }, 120_000);
  expect(run.status).toBe('success');

  // The sandbox step's span names the trace; everything else is looked for in it.
  const step = await until('the sandbox step span', () => spans.find((s) => s.name === 'sandbox step'));
  const inTrace = () => spans.filter((s) => s.traceId === step.traceId);
  const has = (service: string, name: RegExp) => inTrace().some((s) => s.service === service && name.test(s.name));
  await until('the trace to be complete', () =>
    has('dotgit-gateway', /^gateway git-push$/) &&
    has('dotgit-git-server', /receive-pack/) &&
    has('dotgit-git-server', /^git-server post-receive$/) &&
    has('dotgit-git-server', /StartWorkflow:pipeline/) &&
    has('dotgit-worker', /RunWorkflow:pipeline/) &&
    has('dotgit-worker', /RunActivity:runStep/) &&
    has('dotgit-worker', /RunActivity:finishRun/) &&
    // Spans arrive in batches from each process (workflow spans through the worker's sink): wait for every parent.
    inTrace().every((s) => !s.parentSpanId || inTrace().some((p) => p.spanId === s.parentSpanId))
      ? true
      : undefined,
  );

  // Parent links: one root (the gateway's span: git sent no traceparent); every other span's parent is in the trace.
  const ids = new Set(inTrace().map((s) => s.spanId));
  const roots = inTrace().filter((s) => !s.parentSpanId);
  expect(roots.map((s) => `${s.service}:${s.name}`)).toEqual(['dotgit-gateway:gateway git-push']);
  for (const s of inTrace()) if (s.parentSpanId) expect([s.name, ids.has(s.parentSpanId)]).toEqual([s.name, true]);
  // The step's span is a child of its activity's.
  const parentOfStep = inTrace().find((s) => s.spanId === step.parentSpanId);
  expect(parentOfStep?.name).toMatch(/RunActivity:runStep/);

  // The step saw its own span as TRACEPARENT.
  const log = await call('GET', `/api/v1/runs/${encodeURIComponent(runId)}/logs?job=build&step=show`);
  expect(log.text).toContain(`tp=00-${step.traceId}-${step.spanId}-01`);

  // The run's workflow_run webhook carried the trace.
  const delivered = await until('a workflow_run delivery', () => hooks.find((h) => h.event === 'workflow_run'));
  expect(delivered.traceparent).toMatch(new RegExp(`^00-${step.traceId}-[0-9a-f]{16}-01$`));
});

test("log lines written inside the push's trace carry its traceId and their span's spanId (ADR 0028)", async () => {
  const step = spans.find((s) => s.name === 'sandbox step')!;
  const lines = async (service: string) =>
    (await fs.readFile(path.join(dataDir, 'logs', `${service}.log`), 'utf8'))
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  // The worker's first step resolved the sandbox driver, inside the step's activity: its line is in the trace.
  const worker = await lines('worker');
  const sandbox = worker.find((l) => typeof l.msg === 'string' && l.msg.startsWith('sandbox:'));
  expect(sandbox).toEqual(expect.objectContaining({ service: 'worker', traceId: step.traceId, spanId: expect.stringMatching(/^[0-9a-f]{16}$/) }));
  // And what the activity works on, though the line's logger knows nothing of it (ADR 0028: the activity's log context).
  expect(sandbox).toEqual(expect.objectContaining({ tenant: 'acme', repo: 'acme/traced', runId: expect.stringMatching(/^pipeline:acme:traced:/) }));
  expect(spans.some((s) => s.traceId === step.traceId && s.spanId === sandbox!.spanId)).toBe(true);
  // Lines outside any trace carry none; lines inside one carry both ids, once each.
  for (const l of [...worker, ...(await lines('git-server')), ...(await lines('api'))]) if (l.spanId) expect([l.msg, typeof l.traceId]).toEqual([l.msg, 'string']);
  const raw = await fs.readFile(path.join(dataDir, 'logs', 'worker.log'), 'utf8');
  expect(raw.split('\n').filter((l) => (l.match(/"traceId":/g) ?? []).length > 1 || (l.match(/"spanId":/g) ?? []).length > 1)).toEqual([]);
});

test("a deploy started through the api is one trace: the gateway's and api's request spans, the deploy workflow, its step in the sandbox", async () => {
  expect((await call('POST', '/api/v1/repos', { owner: 'acme', name: 'shipped' })).status).toBe(201);
  const pipeline = 'on:\n  push:\n    branches: [no-runs-here]\njobs:\n  noop:\n    steps: [{ run: "true" }]\nenvironments:\n  staging:\n    deploy:\n      - name: ship\n        run: echo "tp=$TRACEPARENT"\n';
  const work = await localRepo({ '.dotgit/pipeline.yml': pipeline });
  const url = new URL(`${platform.gatewayUrl}/acme/shipped.git`);
  url.username = 'x';
  url.password = token;
  expect((await git(['push', url.toString(), 'main'], work)).code).toBe(0);
  const started = await call('POST', '/api/v1/repos/acme/shipped/deploys', { ref: 'main', environment: 'staging' });
  expect(started.status).toBe(202);
  const id: string = started.body.id;
  await until('the deploy to end', async () => {
    const d = (await call('GET', `/api/v1/deploys/${encodeURIComponent(id)}`)).body;
    return ['success', 'failure', 'rolled_back', 'rejected', 'cancelled'].includes(d?.status) ? d : undefined;
  }, 120_000);
  const workflow = await until('the deploy workflow span', () => spans.find((s) => s.name === 'RunWorkflow:deploy'));
  const inTrace = () => spans.filter((s) => s.traceId === workflow.traceId);
  // The lock's grant comes from the environment lock, a long-lived workflow whose own span is exported when it ends.
  const orphan = (s: Span) => !!s.parentSpanId && s.name !== 'SignalWorkflow:lockGranted' && !inTrace().some((p) => p.spanId === s.parentSpanId);
  await until('the deploy trace to be complete', () => (inTrace().some((s) => s.name === 'sandbox step') && !inTrace().some(orphan) ? true : undefined)).catch(() => undefined);
  const names = inTrace().map((s) => `${s.service}:${s.name}`);
  // The request's spans (gateway, api), the workflow it started, and the deploy's step in the sandbox.
  expect(names).toEqual(expect.arrayContaining(['dotgit-gateway:gateway api-write', 'dotgit-api:api POST /api/v1/repos/:owner/:repo/deploys', 'dotgit-api:StartWorkflow:deploy', 'dotgit-worker:RunWorkflow:deploy', 'dotgit-worker:sandbox step']));
  // One root, the gateway's request span; every other span's parent in the trace (but the lock's grant).
  expect(inTrace().filter(orphan).map((s) => s.name)).toEqual([]);
  expect(inTrace().filter((s) => !s.parentSpanId).map((s) => `${s.service}:${s.name}`)).toEqual(['dotgit-gateway:gateway api-write']);
});

test('with observability the runner starts Prometheus, listed in topology.json, scraping every process it started', async () => {
  expect(platform.prometheusUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  const topology = JSON.parse(await fs.readFile(path.join(dataDir, 'run', 'topology.json'), 'utf8')) as { processes: Array<{ role: string; url?: string; metricsUrl?: string }> };
  expect(topology.processes.find((p) => p.role === 'prometheus')?.url).toBe(platform.prometheusUrl);
  expect(topology.processes.find((p) => p.role === 'temporal')?.metricsUrl).toBe(platform.temporalMetricsUrl);
  const up = await until('every target up', async () => {
    const res = (await (await fetch(`${platform.prometheusUrl}/api/v1/query?query=up`)).json()) as { data: { result: Array<{ metric: { job: string }; value: [number, string] }> } };
    const jobs = res.data.result.filter((r) => r.value[1] === '1').map((r) => r.metric.job).sort();
    return jobs.length === 5 ? jobs : undefined;
  });
  expect(up).toEqual(['api', 'gateway', 'git-server', 'temporal', 'worker']);
  const rules = (await (await fetch(`${platform.prometheusUrl}/api/v1/rules`)).json()) as { data: { groups: Array<{ name: string; rules: unknown[] }> } };
  expect(rules.data.groups.map((g) => g.name)).toEqual(['dotgit']);
});
