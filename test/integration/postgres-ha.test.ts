import express from 'express';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createDb, inTransaction, type Db } from '../../core/db';
import { errorMiddleware } from '../../core/http';
import { createLogger } from '../../core/logger';
import { startHaPostgres, type HaPostgresHandle } from '../../infra/provision/patroni';
import { ROOT } from '../../infra/root';

// Postgres under Patroni + etcd for real (issue 13): 3 etcd members, 1 primary, 1 synchronous
// standby, 2 asynchronous replicas. Writes go over HTTP through the services' own error middleware
// and a pool from createDb over the multi-host URL, which follows the primary. One cluster for the
// suite: it takes ~20 s to start.

jest.setTimeout(600_000);

let dir: string;
let ha: HaPostgresHandle;
let db: Db;
let server: ReturnType<ReturnType<typeof express>['listen']>;
let base: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dotgit-ha-'));
  fs.chmodSync(dir, 0o755); // user postgres runs the members in here
  const log = { info: () => undefined, warn: (m: string) => console.warn(m), debug: () => undefined };
  ha = await startHaPostgres({ dataDir: path.join(dir, 'ha'), toolsDir: path.join(ROOT, '.tools'), log, ephemeral: true });
  db = createDb(ha.databaseUrl, 4);
  await db.query('CREATE TABLE ha_writes (n int PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())');
  const app = express();
  app.post('/writes/:n', (req, res, next) => {
    // Idempotent, as a POST with an Idempotency-Key is: a client may resend a write after a 503.
    db.query('INSERT INTO ha_writes (n) VALUES ($1) ON CONFLICT (n) DO NOTHING', [Number(req.params.n)]).then(() => res.status(201).end(), next);
  });
  // A transaction still open when the primary goes away.
  app.post('/slow/:n', (req, res, next) => {
    inTransaction(db, async (c) => {
      await c.query('INSERT INTO ha_writes (n) VALUES ($1)', [Number(req.params.n)]);
      await c.query('SELECT pg_sleep(60)');
    }).then(() => res.status(201).end(), next);
  });
  app.use(errorMiddleware(createLogger('ha-test', 'silent')));
  server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await Promise.all(writers.map((w) => w.stop()));
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await db?.end().catch(() => undefined);
  await ha?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  n: number;
  status: number;
  retryAfter: string | null;
  /** The error body of a non-2xx answer. */
  error?: string;
  sentAt: number;
  doneAt: number;
}

let next = 0;
const writers: Array<{ stop: () => Promise<void> }> = [];
/**
 * One client writing row after row over HTTP until stopped; every answer recorded. With `resend`,
 * it honours 503 + Retry-After as clients are told to: waits, then sends the same write again.
 */
function startWriter(o: { resend: boolean }) {
  const answers: Answer[] = [];
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      const n = ++next;
      for (let attempt = 1; ; attempt++) {
        const sentAt = Date.now();
        const res = await fetch(`${base}/writes/${n}`, { method: 'POST' });
        const body = await res.text();
        const retryAfter = res.headers.get('retry-after');
        answers.push({ n, status: res.status, retryAfter, ...(res.ok ? {} : { error: body }), sentAt, doneAt: Date.now() });
        if (res.status !== 503) break;
        if (!o.resend || attempt >= 5) {
          await new Promise((r) => setTimeout(r, 100));
          break;
        }
        await new Promise((r) => setTimeout(r, Number(retryAfter ?? 1) * 1000));
      }
    }
  })();
  const writer = {
    answers,
    acked: () => answers.filter((a) => a.status === 201),
    stop: async () => {
      stopped = true;
      await done;
    },
  };
  writers.push(writer);
  return writer;
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function expectAllPresent(acked: Answer[]): Promise<void> {
  const { rows } = await db.query<{ n: number }>('SELECT n FROM ha_writes WHERE n = ANY($1::int[])', [acked.map((a) => a.n)]);
  const present = new Set(rows.map((r) => r.n));
  expect(acked.filter((a) => !present.has(a.n)).map((a) => a.n)).toEqual([]);
}

test('kill -9 of the primary (Patroni and Postgres): the synchronous standby takes over, requests in the window answer 503 + Retry-After, no acknowledged write is lost', async () => {
  const before = await ha.leader();
  expect(before).toBeDefined();
  const sync = (await ha.cluster()).find((m) => m.role === 'sync_standby')?.name;
  const writer = startWriter({ resend: false });
  await until('100 acknowledged writes', () => writer.acked().length >= 100);
  const slow = fetch(`${base}/slow/${++next}`, { method: 'POST' });
  await until('the slow transaction running', async () => (await db.query("SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'")).rowCount === 1);
  await before!.kill();
  // Times from the moment both processes are gone: a write sent while kill() ran may still land on the old primary.
  const killedAt = Date.now();
  // The transaction cut off by the loss answers 503 + Retry-After, not 500.
  const cut = await slow;
  expect([cut.status, cut.headers.get('retry-after')]).toEqual([503, '2']);
  await until('a write acknowledged after the kill', () => writer.acked().some((a) => a.sentAt > killedAt));
  const firstWrite = writer.acked().find((a) => a.sentAt > killedAt)!;
  const acksAfter = writer.acked().length;
  await until('50 more writes', () => writer.acked().length >= acksAfter + 50);
  await writer.stop();

  const after = await ha.leader();
  expect(after?.name).toBeDefined();
  expect(after?.name).not.toBe(before!.name);
  // synchronous_mode: only the synchronous standby may be promoted.
  expect(after?.name).toBe(sync);
  const failed = writer.answers.filter((a) => a.status !== 201);
  expect(failed.filter((a) => a.status !== 503 || a.retryAfter === null)).toEqual([]);
  await expectAllPresent(writer.acked());
  console.log(
    `HA primary loss: RTO ${((firstWrite.doneAt - killedAt) / 1000).toFixed(1)} s (kill -9 -> first acknowledged write), ` +
      `${failed.length} requests answered 503 meanwhile, ${writer.acked().length} acknowledged writes, 0 lost; ${before!.name} -> ${after!.name}`,
  );

  // The lost member comes back as a replica of the new primary (pg_rewind), for the next test.
  await before!.start();
  await until('the old primary streaming again', async () => (await ha.cluster()).filter((m) => m.role !== 'leader' && m.state === 'streaming').length === 3);
});

test('a planned switchover (Patroni REST /switchover): 0 failed writes for a client that honours Retry-After, the synchronous standby leads', async () => {
  const before = await ha.leader();
  const writer = startWriter({ resend: true });
  await until('50 acknowledged writes', () => writer.acked().length >= 50);
  const started = Date.now();
  const after = await ha.switchover();
  const switched = Date.now();
  const acksAfter = writer.acked().length;
  await until('50 more writes', () => writer.acked().length >= acksAfter + 50);
  await writer.stop();

  expect(after.name).not.toBe(before!.name);
  expect((await ha.leader())?.name).toBe(after.name);
  // A write in flight when the old primary shuts down may answer 503 (its connection ended while it
  // waited for the synchronous standby: it may have committed, so the pool does not resend it);
  // the client's resend is idempotent. No write fails for good, none answers anything but 503.
  const finalAnswer = new Map(writer.answers.map((a) => [a.n, a.status]));
  expect([...finalAnswer].filter(([, status]) => status !== 201)).toEqual([]);
  const retried = writer.answers.filter((a) => a.status !== 201);
  expect(retried.filter((a) => a.status !== 503 || a.retryAfter === null)).toEqual([]);
  await expectAllPresent(writer.acked());
  const during = writer.answers.filter((a) => a.doneAt >= started && a.sentAt <= switched + 1000);
  const slowest = Math.max(...during.map((a) => a.doneAt - a.sentAt));
  console.log(
    `HA switchover: ${((switched - started) / 1000).toFixed(1)} s until ${after.name} led, 0 failed of ${finalAnswer.size} writes ` +
      `(${retried.length} answered 503 and were resent: ${[...new Set(retried.map((a) => a.error))].join('; ')}), ` +
      `slowest write meanwhile ${slowest} ms; ${before!.name} -> ${after.name}`,
  );
});
