/**
 * Small helpers of the benchmark: timed processes, the isolated git client, a gateway API client,
 * statistics and formatting. Nothing here depends on jest or on the test harness.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import pg from 'pg';
import type { Principal } from '../core/principal';
import { serveHookChannel } from '../git-server/hook-channel';
import { ROOT } from '../infra/root';

export interface ProcResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall-clock time from spawn to exit, milliseconds. */
  ms: number;
}

/** Processes started by runProcess that have not exited yet, so an interrupted run can end them. */
const inFlight = new Map<number, Promise<unknown>>();
let closed = false;

/** SIGTERMs every process runProcess started that is still running, waits until they are gone,
 * and makes later runProcess calls fail: the run is being torn down. */
export async function endInFlightProcesses(): Promise<void> {
  closed = true;
  for (const pid of inFlight.keys()) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  await Promise.allSettled([...inFlight.values()]);
}

/** Runs a process to completion and times it; never throws on a non-zero exit. */
export function runProcess(command: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    if (closed) {
      reject(new Error(`not starting ${command}: the benchmark is shutting down`));
      return;
    }
    const started = performance.now();
    const child = spawn(command, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const pid = child.pid;
    if (pid !== undefined) {
      inFlight.set(pid, new Promise((done) => child.once('close', done)));
      child.once('close', () => inFlight.delete(pid));
    }
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      if (stdout.length < 1 << 20) stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 1 << 20) stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr, ms: performance.now() - started }));
  });
}

/** Environment of every git client run: no user or system config, no prompts, fixed identity. */
export function gitEnv(home: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: home,
    LANG: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: '/bin/false',
    GIT_AUTHOR_NAME: 'Bench',
    GIT_AUTHOR_EMAIL: 'bench@example.com',
    GIT_COMMITTER_NAME: 'Bench',
    GIT_COMMITTER_EMAIL: 'bench@example.com',
  };
}

export class Git {
  constructor(private readonly home: string) {}

  /** Runs git; with `check` (default) a non-zero exit throws with git's stderr. */
  async run(args: string[], cwd?: string, check = true): Promise<ProcResult> {
    const r = await runProcess('git', args, { cwd, env: gitEnv(this.home) });
    if (check && r.code !== 0) throw new Error(`git ${redact(args.join(' '))} exited ${r.code}: ${redact(r.stderr.trim())}`);
    return r;
  }
}

/** Hides the token of `http://x:TOKEN@host` URLs in messages. */
export function redact(text: string): string {
  return text.replace(/(https?:\/\/[^:/@\s]+:)[^@\s]+@/g, '$1***@');
}

/** A minimal client of the gateway's REST API. */
export class Api {
  constructor(readonly gatewayUrl: string) {}

  async call<T>(method: string, path: string, token: string, body?: unknown, expect: number[] = [200, 201]): Promise<T> {
    const res = await fetch(`${this.gatewayUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!expect.includes(res.status)) throw new Error(`${method} ${path} answered ${res.status}: ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** Clone URL with the token as HTTP Basic password. */
  cloneUrl(owner: string, repo: string, token: string): string {
    const u = new URL(`${this.gatewayUrl}/${owner}/${repo}.git`);
    u.username = 'x';
    u.password = token;
    return u.toString();
  }
}

/**
 * A tenant named `owner` with an admin user `bencher`, and a token of that user (read, write,
 * admin): who the benches push and call as.
 */
export async function benchTenant(api: Api, adminToken: string, owner: string): Promise<string> {
  await api.call('POST', '/api/v1/tenants', adminToken, { name: owner });
  await api.call('POST', `/api/v1/tenants/${owner}/users`, adminToken, { username: 'bencher', role: 'admin' });
  return (await api.call<{ token: string }>('POST', '/api/v1/tokens', adminToken, { username: 'bencher', scopes: ['read', 'write', 'admin'] })).token;
}

export interface RunView {
  id: string;
  status: string;
  message: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  steps: Array<{ job: string; name: string; status: string; exitCode: number | null; startedAt: string | null; finishedAt: string | null }>;
}

/** Every `dotgit: run <id> <url>` line of a push's output. */
export function runIdsFrom(pushOutput: string): string[] {
  return [...pushOutput.matchAll(/remote: dotgit: run (\S+) (\S+)/g)].map((m) => m[1]!);
}

export interface Stats {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function stats(samples: number[]): Stats {
  if (samples.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const s = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, n: s.length };
}

export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 100) return `${Math.round(ms)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

export function fmtStats(s: Stats, unit: (n: number) => string = fmtMs): string {
  if (s.n === 0) return '—';
  if (s.n === 1) return unit(s.median);
  return `${unit(s.median)} (${unit(s.min)}–${unit(s.max)})`;
}

export function fmtBytes(bytes: number): string {
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  if (bytes >= 1 << 10) return `${(bytes / (1 << 10)).toFixed(0)} KiB`;
  return `${bytes} B`;
}

export function fmtRatio(r: number): string {
  if (!Number.isFinite(r)) return '—';
  return r >= 100 ? `${Math.round(r)}×` : r >= 10 ? `${r.toFixed(1)}×` : `${r.toFixed(2)}×`;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Where the line `heading` starts in `doc` (a whole line, not a prefix of a longer heading), or -1. */
function headingLine(doc: string, heading: string): number {
  for (let i = doc.indexOf(heading); i >= 0; i = doc.indexOf(heading, i + 1)) {
    const end = i + heading.length;
    if ((i === 0 || doc[i - 1] === '\n') && (end === doc.length || doc[end] === '\n')) return i;
  }
  return -1;
}

/** Replaces the section of BENCHMARKS.md that starts with `heading` (up to the next `## `), or appends it. */
export function replaceSection(doc: string, heading: string, section: string): string {
  const start = headingLine(doc, heading);
  if (start < 0) return `${doc.trimEnd()}\n\n${section.trimEnd()}\n`;
  const next = doc.indexOf('\n## ', start + heading.length);
  return doc.slice(0, start) + section.trimEnd() + '\n' + (next < 0 ? '' : doc.slice(next));
}

/**
 * `fresh`'s preamble (before its first `## `) and each of its sections in place of the same ones in
 * `doc`; `doc`'s other sections — written by the benches that rewrite only their own, or by hand —
 * stay where they are. The full run writes BENCHMARKS.md this way rather than from scratch.
 */
export function mergeSections(doc: string, fresh: string): string {
  const bodyStart = (text: string) => (text.startsWith('## ') ? 0 : text.indexOf('\n## ') + 1 || text.length);
  const [freshBody, docBody] = [bodyStart(fresh), bodyStart(doc)];
  const preamble = freshBody > 0 ? fresh.slice(0, freshBody) : doc.slice(0, docBody);
  let out = `${preamble.trimEnd()}\n\n${doc.slice(docBody)}`;
  for (const section of fresh.slice(freshBody).split(/\n(?=## )/)) {
    if (section.startsWith('## ')) out = replaceSection(out, section.split('\n', 1)[0], section);
  }
  return `${out.trimEnd()}\n`;
}

/** The platform admin (made at first start) as a Principal, for identities signed like the gateway's. */
export async function adminPrincipal(databaseUrl: string): Promise<Principal> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const user = await client.query<{ id: string; tenant_id: string; tenant: string; role: Principal['role'] }>(
      `SELECT u.id, u.tenant_id, t.name AS tenant, u.role FROM users u JOIN tenants t ON t.id = u.tenant_id
        WHERE u.username = 'admin' AND t.name = 'dotgit' AND u.platform_admin`,
    );
    const row = user.rows[0];
    if (!row) throw new Error('no platform admin "admin" in tenant "dotgit"');
    const tok = await client.query<{ id: string }>('SELECT id FROM tokens WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id LIMIT 1', [row.id]);
    return {
      userId: Number(row.id),
      username: 'admin',
      tenantId: Number(row.tenant_id),
      tenantName: row.tenant,
      role: row.role,
      platformAdmin: true,
      scopes: ['read', 'write', 'admin'],
      tokenId: Number(tok.rows[0]?.id ?? 0),
    };
  } finally {
    await client.end();
  }
}

/** An integer benchmark setting from the environment (`fallback` when unset), refused outside min..max. */
export function intEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name] ?? String(fallback);
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer ${min}..${max}, got ${raw}`);
  return n;
}

/**
 * The post-receive hook alone, `rounds` times (ms each): the real script, on a channel answered at
 * once (no database work), so the figure is what a hook costs a push before the git-server works.
 */
export async function hookAloneMs(rounds: number): Promise<number[]> {
  const script = path.join(ROOT, 'git-server', 'hooks', 'post-receive');
  const line = `${'1'.repeat(40)} ${'2'.repeat(40)} refs/heads/main\n`;
  const out: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const started = performance.now();
    let answered = 0;
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(script, [], { env: { PATH: process.env.PATH, DOTGIT_HOOK_FD: '3' }, stdio: ['pipe', 'ignore', 'ignore', 'pipe'] });
      serveHookChannel(child.stdio[3] as Duplex, async () => {
        answered++;
        return { verdict: 'ok', messages: [] };
      });
      child.on('error', reject);
      child.on('exit', (c) => {
        (child.stdio[3] as Duplex).destroy();
        resolve(c);
      });
      child.stdin!.end(line);
    });
    if (code !== 0 || answered !== 1) throw new Error(`the hook alone exited ${code} after ${answered} requests`);
    out.push(performance.now() - started);
  }
  return out;
}
