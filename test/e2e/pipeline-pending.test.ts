import { platformInfo } from '../harness/platform-info';
import { api, createPrivateRepo, createTenantWithAdmin, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';
import { runDotgit } from '../helpers/cli';
import { scrape } from '../helpers/prom';
import { readSse, type SseEvent } from '../helpers/sse';

// Issue 17 item 8 on the real platform (ADR 0044): a job waiting for a sandbox slot (every job slot
// of the platform's one sandbox host taken by a job of the same run) is pending `sandbox` over
// GET /runs/{id}, and each job's waits come and go as `pending` events on the run's live stream.

const info = platformInfo();
const metricsUrl = `http://127.0.0.1:${info.workerPort}/metrics`;
const SANDBOX = { queue: 'dotgit-sandbox', kind: 'activity' };
const TERMINAL = new Set(['success', 'failure', 'cancelled']);

let owner: TenantFixture;

/** The `dotgit` command as the run's owner runs it. */
const dotgit = (args: string[]) => runDotgit(args, owner.token);

const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  owner = await createTenantWithAdmin();
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  for (const deadline = Date.now() + timeoutMs; ; ) {
    const got = await probe();
    if (got !== undefined) return got;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** Pushes `pipeline` to a new repository; answers the run id and the run's live stream, read from its start until it ends. */
async function pushAndFollow(pipeline: string) {
  const repo = await createPrivateRepo(owner, 'pending');
  const push = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], await localRepo({ '.dotgit/pipeline.yml': pipeline }));
  expect(push.code).toBe(0);
  const [runId] = runIdsFrom(push.stderr);
  const seen: { events: SseEvent[] } = { events: [] };
  const stream = readSse(`${info.gatewayUrl}/api/v1/runs/${encodeURIComponent(runId)}/events`, {
    token: owner.token,
    stop: (e, all) => {
      seen.events = all;
      return e.event === 'status' && TERMINAL.has(e.data.status);
    },
  });
  return { runId, seen, stream };
}

const pendingOf = (events: SseEvent[], job: string) => events.filter((e) => e.event === 'pending' && e.data.job === job).map((e) => e.data);

test('a job waiting for a sandbox slot is pending "sandbox" over the API and on the live stream; the jobs that got one stopped waiting', async () => {
  const scraped = await scrape(metricsUrl);
  const slots = scraped.sum('dotgit_worker_slots', SANDBOX);
  const busyBefore = scraped.sum('dotgit_worker_slots_used', SANDBOX) ?? 0;
  expect(slots).toBeGreaterThan(0);
  // One more holder than the host has job slots: at least one of them must wait for a slot.
  const { runId, seen, stream } = await pushAndFollow(`
jobs:
  hold:
    matrix: { slot: [${Array.from({ length: slots! + 1 }, (_, i) => i + 1).join(', ')}] }
    steps:
      - name: hold
        run: sleep 300
  after:
    needs: [hold]
    steps:
      - name: after
        run: "true"
`);
  const cancel = () => api('POST', `/api/v1/runs/${encodeURIComponent(runId)}/cancel`, { token: owner.token });
  // The holders sleep until the run is cancelled: cancelled however this test ends, so later suites find the slots free.
  cleanups.push(cancel);
  // Every slot of the host is taken by a holder (the slots busy before this run count as taken)…
  const run = await until('every sandbox slot taken by the holders', async () => {
    const r = await api('GET', `/api/v1/runs/${encodeURIComponent(runId)}`, { token: owner.token });
    const running = (r.body.steps as { job: string; status: string }[]).filter((s) => s.job.startsWith('hold (') && s.status === 'running').length;
    if (running < slots! - busyBefore) return undefined;
    return (await scrape(metricsUrl)).sum('dotgit_worker_slots_used', SANDBOX) === slots ? r.body : undefined;
  });
  // …so a holder that is still queued waits for a slot, and says so.
  const steps = run.steps as { job: string; status: string; pending: { reason: string; message: string } | null }[];
  const waiting = steps.filter((s) => s.job.startsWith('hold (') && s.status === 'queued');
  expect(waiting.length).toBeGreaterThanOrEqual(1);
  for (const s of waiting) expect(s.pending).toEqual({ reason: 'sandbox', message: expect.stringMatching(/^waiting for a sandbox host( \(backlog \d+\))?$/) });
  expect(steps.find((s) => s.job === 'after')!.pending).toEqual({ reason: 'needs', message: 'waiting for needs: hold' });
  // The run has steps running: it is not pending itself.
  expect(run.pending).toBeNull();
  // The live stream told the same: each waiting holder started waiting for a host and never stopped.
  const live = await until('the waiting holder\'s pending event', async () => (waiting.every((s) => pendingOf(seen.events, s.job).length > 0) ? seen.events : undefined), 30_000);
  // (Those still queued now: a slot another suite's job freed meanwhile may have let one start.)
  const queuedNow = new Set(((await api('GET', `/api/v1/runs/${encodeURIComponent(runId)}`, { token: owner.token })).body.steps as { job: string; status: string }[]).filter((s) => s.status === 'queued').map((s) => s.job));
  const stillWaiting = waiting.filter((s) => queuedNow.has(s.job));
  expect(stillWaiting.length).toBeGreaterThanOrEqual(1);
  for (const s of stillWaiting) expect(pendingOf(live, s.job)).toEqual([{ job: s.job, reason: 'sandbox', message: 'waiting for a sandbox host' }]);
  // And the command says so.
  const view = await dotgit(['run', 'view', runId]);
  expect(view.code).toBe(0);
  expect(view.stdout).toContain(`  ${stillWaiting[0].job}/hold  queued  (pending: waiting for a sandbox host`);
  expect(await cancel()).toMatchObject({ status: 202 });
  const { events } = await stream;
  expect(events[events.length - 1]).toMatchObject({ event: 'status', data: { status: 'cancelled' } });
  // A holder that got a slot: waiting for a host, then (once its step ran) no longer waiting.
  const started = steps.filter((s) => s.job.startsWith('hold (') && s.status === 'running');
  expect(started.length).toBeGreaterThanOrEqual(1);
  for (const s of started) {
    expect(pendingOf(events, s.job)).toEqual([
      { job: s.job, reason: 'sandbox', message: 'waiting for a sandbox host' },
      { job: s.job, reason: null, message: null },
    ]);
    const running = events.findIndex((e) => e.event === 'step' && e.data.job === s.job && e.data.status === 'running');
    const stopped = events.findIndex((e) => e.event === 'pending' && e.data.job === s.job && e.data.reason === null);
    expect(running).toBeGreaterThanOrEqual(0);
    expect(stopped).toBeGreaterThan(running);
  }
  expect(pendingOf(events, 'after')[0]).toEqual({ job: 'after', reason: 'needs', message: 'waiting for needs: hold' });
  // Each event carries its stream id, so a reconnecting client resumes after it.
  expect(events.filter((e) => e.event === 'pending').every((e) => /^\d+-\d+$/.test(e.id ?? ''))).toBe(true);
});

test('a job that needs another waits for it, then for a host, then runs: three pending events on the live stream', async () => {
  const { runId, stream } = await pushAndFollow(`
jobs:
  first:
    steps: [{ name: a, run: "true" }]
  second:
    needs: [first]
    steps: [{ name: b, run: "true" }]
`);
  const { events } = await stream;
  expect((await waitForRun(runId, owner.token)).status).toBe('success');
  expect(pendingOf(events, 'second')).toEqual([
    { job: 'second', reason: 'needs', message: 'waiting for needs: first' },
    { job: 'second', reason: 'sandbox', message: 'waiting for a sandbox host' },
    { job: 'second', reason: null, message: null },
  ]);
  // `first` needed nothing: it waited for a host only.
  expect(pendingOf(events, 'first').map((p) => p.reason)).toEqual(['sandbox', null]);
});

test('a job queued in its job-level concurrency group is pending "concurrency" over the API and on the live stream, until its turn', async () => {
  // The push's run holds the group (its job sleeps until cancelled); a manual run of the same file waits for it.
  const { runId: holder, stream: holderStream } = await pushAndFollow(`
on:
  push:
  manual:
    inputs: { hold: { type: boolean, default: true } }
jobs:
  ship:
    concurrency: ship
    steps:
      - name: s
        run: if [ "$INPUT_HOLD" = true ]; then sleep 300; fi
`);
  const cancelHolder = () => api('POST', `/api/v1/runs/${encodeURIComponent(holder)}/cancel`, { token: owner.token });
  cleanups.push(cancelHolder);
  const path = `/api/v1/runs/${encodeURIComponent(holder)}`;
  const repo = (await api('GET', path, { token: owner.token })).body.repo as string;
  await until('the holder running', async () => ((await api('GET', path, { token: owner.token })).body.steps[0]?.status === 'running' ? true : undefined));
  const started = await api('POST', `/api/v1/repos/${repo}/runs`, { token: owner.token, body: { ref: 'main', inputs: { hold: false } } });
  expect(started.status).toBe(202);
  const waiter = started.body.id as string;
  cleanups.push(() => api('POST', `/api/v1/runs/${encodeURIComponent(waiter)}/cancel`, { token: owner.token }));
  // The command follows the same feed: one event a line with --json.
  const watched = dotgit(['run', 'watch', waiter, '--json']);
  const seen: { events: SseEvent[] } = { events: [] };
  const stream = readSse(`${info.gatewayUrl}/api/v1/runs/${encodeURIComponent(waiter)}/events`, {
    token: owner.token,
    stop: (e, all) => {
      seen.events = all;
      return e.event === 'status' && TERMINAL.has(e.data.status);
    },
  });
  const queued = { reason: 'concurrency', message: 'queued behind 1 holder in concurrency group ship' };
  const waiting = await until('the manual run\'s job queued in its group', async () => {
    const r = await api('GET', `/api/v1/runs/${encodeURIComponent(waiter)}`, { token: owner.token });
    return r.body.steps?.[0]?.pending?.reason === 'concurrency' ? r.body : undefined;
  });
  expect(waiting.steps[0]).toMatchObject({ job: 'ship', status: 'queued', pending: queued });
  expect(waiting.pending).toEqual(queued);
  await until('the concurrency pending event', async () => (pendingOf(seen.events, 'ship').some((p) => p.reason === 'concurrency') ? true : undefined), 30_000);
  // The holder goes; the waiting job gets its turn and runs.
  expect(await cancelHolder()).toMatchObject({ status: 202 });
  await holderStream;
  const { events } = await stream;
  expect(events[events.length - 1]).toMatchObject({ event: 'status', data: { status: 'success' } });
  expect(pendingOf(events, 'ship')).toEqual([
    { job: 'ship', reason: 'sandbox', message: 'waiting for a sandbox host' },
    { job: 'ship', ...queued },
    { job: 'ship', reason: 'sandbox', message: 'waiting for a sandbox host' },
    { job: 'ship', reason: null, message: null },
  ]);
  const watch = await watched;
  expect(watch.code).toBe(0);
  const printed = watch.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as SseEvent);
  expect(pendingOf(printed, 'ship')).toEqual(pendingOf(events, 'ship'));
});
