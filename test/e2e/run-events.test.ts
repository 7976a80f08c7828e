import WebSocket from 'ws';
import { Redis } from 'ioredis';
import { logStreamKey } from '../../core/redis';
import { RUN_EVENTS_TTL_AFTER_END_SECONDS } from '../../core/run-events';
import { platformInfo } from '../harness/platform-info';
import { createPrivateRepo, createTenantWithAdmin, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';
import { readSse, type SseEvent } from '../helpers/sse';

// Live run events (CONTRACT `GET /runs/{id}/events`) through the gateway: SSE resumable with
// Last-Event-ID, and the same feed over a WebSocket.

const LINES = 80;
const PIPELINE = `
jobs:
  count:
    steps:
      - name: numbers
        run: |
          for i in $(seq 1 ${LINES}); do echo "line $i"; sleep 0.03; done
`;

let owner: TenantFixture;
let repo: string;
let runId: string;

beforeAll(async () => {
  owner = await createTenantWithAdmin();
  repo = await createPrivateRepo(owner, 'ev');
  const work = await localRepo({ '.dotgit/pipeline.yml': PIPELINE });
  const push = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  expect(push.code).toBe(0);
  [runId] = runIdsFrom(push.stderr);
});

const eventsUrl = () => `${platformInfo().gatewayUrl}/api/v1/runs/${encodeURIComponent(runId)}/events`;
const numbers = (events: SseEvent[]) => events.filter((e) => e.event === 'log').map((e) => Number(/^line (\d+)$/.exec(e.data.line)?.[1]));

test('SSE: a connection dropped mid-run resumes with Last-Event-ID, losing and repeating no line', async () => {
  // First connection: drop it after some lines while the step still prints.
  const first = await readSse(eventsUrl(), { token: owner.token, stop: (_e, all) => all.filter((x) => x.event === 'log').length >= 15 });
  expect(first.status).toBe(200);
  const lastId = first.events[first.events.length - 1].id!;
  expect(lastId).toMatch(/^\d+-\d+$/);
  const second = await readSse(eventsUrl(), { token: owner.token, lastEventId: lastId });
  const all = [...first.events, ...second.events];
  expect(numbers(all)).toEqual(Array.from({ length: LINES }, (_, i) => i + 1));
  // Ids strictly increase across both connections: nothing was sent twice.
  const ids = all.map((e) => e.id!);
  expect(new Set(ids).size).toBe(ids.length);
  // Step and run status events come in order, and the stream ends with the terminal status.
  const steps = all.filter((e) => e.event === 'step').map((e) => e.data.status);
  expect(steps).toEqual(['running', 'success']);
  expect(all[0]).toMatchObject({ event: 'status', data: { status: 'running' } });
  expect(all[all.length - 1]).toMatchObject({ event: 'status', data: { status: 'success' } });
  expect((await waitForRun(runId, owner.token)).status).toBe('success');
  // The ended run's stream is kept only briefly for late watchers (the stored logs stay).
  const redis = new Redis(platformInfo().redisUrl);
  try {
    const ttl = await redis.ttl(logStreamKey(runId));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(RUN_EVENTS_TTL_AFTER_END_SECONDS);
  } finally {
    redis.disconnect();
  }
});

test('WebSocket: the same events as JSON frames, resumable, closed with 1000 after the terminal status', async () => {
  const collect = (query = '') =>
    new Promise<{ frames: any[]; code: number }>((resolve, reject) => {
      const ws = new WebSocket(`${eventsUrl().replace(/^http/, 'ws')}${query}`, { headers: { authorization: `Bearer ${owner.token}` } });
      const frames: any[] = [];
      ws.on('message', (m) => frames.push(JSON.parse(String(m))));
      ws.on('close', (code) => resolve({ frames, code }));
      ws.on('error', reject);
    });
  const whole = await collect();
  expect(whole.code).toBe(1000);
  expect(numbers(whole.frames)).toHaveLength(LINES);
  expect(whole.frames[whole.frames.length - 1]).toMatchObject({ event: 'status', data: { status: 'success' } });
  const middle = whole.frames.find((f) => f.event === 'log' && f.data.line === 'line 40');
  const rest = await collect(`?lastEventId=${middle.id}`);
  expect(numbers(rest.frames)).toEqual(Array.from({ length: LINES - 40 }, (_, i) => i + 41));
});

test('event feeds are refused without access and for a malformed Last-Event-ID', async () => {
  const stranger = await createTenantWithAdmin();
  const denied = await readSse(eventsUrl(), { token: stranger.token });
  expect(denied.status).toBe(404);
  expect(JSON.parse(denied.text!).error.message).toMatch(/not found/);
  const bad = await readSse(eventsUrl(), { token: owner.token, lastEventId: '../../etc' });
  expect(bad.status).toBe(400);
  expect(JSON.parse(bad.text!).error.message).toMatch(/Last-Event-ID/);
  const refused = await new Promise<number>((resolve) => {
    const ws = new WebSocket(eventsUrl().replace(/^http/, 'ws'), { headers: { authorization: `Bearer ${stranger.token}` } });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => resolve(101));
    ws.on('error', () => undefined);
  });
  expect(refused).toBe(404);
});
