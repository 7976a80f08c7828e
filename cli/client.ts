/**
 * A typed TypeScript SDK of the REST API v1 (CONTRACT). Uses global fetch; its one dependency,
 * eventsource-parser, reads the live event streams.
 */
import { EventSourceParserStream } from 'eventsource-parser/stream';
import type { z } from 'zod';
import type {
  DEPLOY_STATUSES,
  ROLES,
  RepoAnswer,
  RepoListAnswer,
  TokenAnswer,
  TokenBody,
  TokenListAnswer,
  artifactListAnswer,
  auditListAnswer,
  auditVerifyAnswer,
  decisionAnswer,
  deployAnswer,
  deployCreatedAnswer,
  deployListAnswer,
  runAnswer,
  runCreatedAnswer,
  runListAnswer,
  secretListAnswer,
  tenantAnswer,
  userAnswer,
} from '../api/schemas';
import type { ShardMoveAnswer } from '../api/schemas/shards';
import type { cacheAnswer, cacheListAnswer, rerunAnswer } from '../api/schemas/pipelines';

// The API's own schemas (api/schemas) are the one description of its answers: types only, so the
// SDK loads neither zod nor the api at run time.
export type Run = z.infer<typeof runAnswer>;
export type DeployStatus = (typeof DEPLOY_STATUSES)[number];
export type Deploy = z.infer<typeof deployAnswer>;
export type Repo = RepoAnswer;
export type Artifact = z.infer<typeof artifactListAnswer>['artifacts'][number];
type Role = (typeof ROLES)[number];

/** One event of a run's or deploy's live feed (`GET …/events`, README "Live logs and events"). */
export type RunEvent =
  | { id: string; event: 'log'; data: { job: string; step: string; stream: string; line: string; attempt?: number } }
  | { id: string; event: 'step'; data: { job: string; step: string; status: string; exitCode: number | null; attempt?: number } }
  | { id: string; event: 'status'; data: { status: string; message: string | null } }
  // Why a job waits (ADR 0044): its reason as it starts waiting or the reason changes; reason null when it stops.
  | { id: string; event: 'pending'; data: { job: string; reason: 'concurrency' | 'needs' | 'sandbox' | null; message: string | null } };

/** One audit event as `GET /api/v1/audit` lists it; the answer of `GET /api/v1/audit/verify`. */
export type AuditEntry = z.infer<typeof auditListAnswer>['events'][number];
export type AuditVerification = z.infer<typeof auditVerifyAnswer>;

/** Thrown for every non-2xx answer; carries the CONTRACT error body's code and the request id. */
export class DotgitApiError extends Error {
  override readonly name = 'DotgitApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId: string | null,
  ) {
    super(`${status} ${code}: ${message}`);
  }
}

/** `?a=1&b=x` of the defined values, or '' when none is. */
function query(q: Record<string, string | number | undefined>): string {
  const text = new URLSearchParams(Object.entries(q).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)])).toString();
  return text ? `?${text}` : '';
}

export const TERMINAL_STATUSES = ['success', 'failure', 'cancelled'] as const;
export const TERMINAL_DEPLOY_STATUSES = ['success', 'failure', 'rolled_back', 'rejected', 'cancelled'] as const;

export class DotgitClient {
  /** @param baseUrl the gateway, e.g. `http://127.0.0.1:8080`. @param token an API token or JWT. */
  constructor(
    private readonly baseUrl: string,
    private readonly token?: string,
  ) {}

  private async request(method: string, path: string, body?: unknown, extra: { headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Response> {
    const headers: Record<string, string> = { ...extra.headers };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.baseUrl.replace(/\/+$/, '')}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: extra.signal });
    if (!res.ok) {
      const text = await res.text();
      let err: { code?: string; message?: string; requestId?: string | null } = {};
      try {
        err = (JSON.parse(text) as { error?: typeof err }).error ?? {};
      } catch {
        err = { message: text };
      }
      throw new DotgitApiError(res.status, err.code ?? 'error', err.message ?? res.statusText, err.requestId ?? res.headers.get('x-request-id'));
    }
    return res;
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await (await this.request(method, path, body)).json()) as T;
  }

  createTenant(name: string) {
    return this.json<z.infer<typeof tenantAnswer>>('POST', '/api/v1/tenants', { name });
  }
  createUser(tenant: string, username: string, role: Role = 'member') {
    return this.json<z.infer<typeof userAnswer>>('POST', `/api/v1/tenants/${encodeURIComponent(tenant)}/users`, { username, role });
  }
  /** Moves a logical shard to another database of the shard map (platform admins, ADR 0026); answers at once (202) with the workflow id. */
  moveShard(shard: number, toDatabase: string) {
    return this.json<ShardMoveAnswer>('POST', `/api/v1/admin/shards/${shard}/move`, { toDatabase });
  }
  createToken(scopes: TokenBody['scopes'], options: Omit<TokenBody, 'scopes'> = {}) {
    return this.json<TokenAnswer>('POST', '/api/v1/tokens', { scopes, ...options });
  }
  /** The caller's own live tokens, a page at a time (`next`: the `after` of the next page). */
  listTokens(page: { after?: number; limit?: number } = {}) {
    return this.json<TokenListAnswer>('GET', `/api/v1/tokens${query(page)}`);
  }
  async revokeToken(id: number): Promise<void> {
    await this.request('DELETE', `/api/v1/tokens/${id}`);
  }
  createRepo(owner: string, name: string, visibility: 'public' | 'private' = 'private') {
    return this.json<Repo>('POST', '/api/v1/repos', { owner, name, visibility });
  }
  /** Repositories the caller may read (only tenant `owner`'s when given), a page at a time. */
  listRepos(page: { owner?: string; after?: number; limit?: number } = {}) {
    return this.json<RepoListAnswer>('GET', `/api/v1/repos${query(page)}`);
  }
  getRepo(owner: string, name: string) {
    return this.json<Repo>('GET', `/api/v1/repos/${encodeURIComponent(owner)}/${encodeURIComponent(name)}`);
  }
  /** Changes the branch HEAD points at (repository admin; CONTRACT "Extended surface"). */
  setDefaultBranch(owner: string, name: string, defaultBranch: string) {
    return this.json<Repo>('PATCH', repoPath(owner, name), { defaultBranch });
  }
  async listRuns(owner: string, name: string, filter: { commit?: string; ref?: string; status?: string } = {}) {
    const q = new URLSearchParams(Object.entries(filter).filter(([, v]) => v !== undefined) as [string, string][]).toString();
    const path = `/api/v1/repos/${encodeURIComponent(owner)}/${encodeURIComponent(name)}/runs${q ? `?${q}` : ''}`;
    return (await this.json<z.infer<typeof runListAnswer>>('GET', path)).runs;
  }
  getRun(id: string) {
    return this.json<Run>('GET', `/api/v1/runs/${encodeURIComponent(id)}`);
  }
  async logs(id: string, job?: string, step?: string, attempt?: number): Promise<string> {
    const q = new URLSearchParams({ ...(job ? { job } : {}), ...(step ? { step } : {}), ...(attempt ? { attempt: String(attempt) } : {}) }).toString();
    return (await this.request('GET', `/api/v1/runs/${encodeURIComponent(id)}/logs${q ? `?${q}` : ''}`)).text();
  }
  async artifacts(id: string): Promise<Artifact[]> {
    return (await this.json<z.infer<typeof artifactListAnswer>>('GET', `/api/v1/runs/${encodeURIComponent(id)}/artifacts`)).artifacts;
  }
  async artifact(id: string, path: string): Promise<Buffer> {
    const encoded = path.split('/').map(encodeURIComponent).join('/');
    return Buffer.from(await (await this.request('GET', `/api/v1/runs/${encodeURIComponent(id)}/artifacts/${encoded}`)).arrayBuffer());
  }
  async cancelRun(id: string): Promise<void> {
    await this.request('POST', `/api/v1/runs/${encodeURIComponent(id)}/cancel`);
  }
  /** Re-runs a run that ended as its next attempt (issue 17): every job, or with `failedOnly` the ones that did not succeed. */
  rerunRun(id: string, failedOnly = false) {
    return this.json<z.infer<typeof rerunAnswer>>('POST', `/api/v1/runs/${encodeURIComponent(id)}/rerun`, failedOnly ? { failedOnly } : {});
  }
  /** A repository's pipeline dependency caches (issue 17), most recently used first. */
  listCaches(owner: string, name: string, q: { ref?: string; key?: string } = {}) {
    const query = new URLSearchParams(Object.entries(q).filter(([, v]) => v !== undefined) as [string, string][]).toString();
    return this.json<z.infer<typeof cacheListAnswer>>('GET', `${repoPath(owner, name)}/caches${query ? `?${query}` : ''}`);
  }
  getCache(owner: string, name: string, id: string) {
    return this.json<z.infer<typeof cacheAnswer>>('GET', `${repoPath(owner, name)}/caches/${encodeURIComponent(id)}`);
  }
  async deleteCache(owner: string, name: string, id: string): Promise<void> {
    await this.request('DELETE', `${repoPath(owner, name)}/caches/${encodeURIComponent(id)}`);
  }

  /** Starts a run of a ref by hand; answers at once (202) with its id. */
  startRun(owner: string, name: string, ref: string, inputs?: Record<string, string | number | boolean>) {
    return this.json<z.infer<typeof runCreatedAnswer>>('POST', `${repoPath(owner, name)}/runs`, { ref, ...(inputs ? { inputs } : {}) });
  }
  /** Sets a pipeline secret (write-only; `environment` limits it to deploys of that environment). */
  async setSecret(owner: string, name: string, secret: string, value: string, environment?: string): Promise<void> {
    await this.request('PUT', `${repoPath(owner, name)}/secrets/${encodeURIComponent(secret)}`, { value, ...(environment ? { environment } : {}) });
  }

  /** Names of the repository's secrets (never their values). */
  async listSecrets(owner: string, name: string) {
    return (await this.json<z.infer<typeof secretListAnswer>>('GET', `${repoPath(owner, name)}/secrets`)).secrets;
  }
  async deleteSecret(owner: string, name: string, secret: string, environment?: string): Promise<void> {
    await this.request('DELETE', `${repoPath(owner, name)}/secrets/${encodeURIComponent(secret)}${environment ? `?environment=${encodeURIComponent(environment)}` : ''}`);
  }

  /** Asks for a deploy; answers at once (202) with its id and links. */
  deploy(owner: string, name: string, environment: string, ref: string) {
    return this.json<z.infer<typeof deployCreatedAnswer>>('POST', `${repoPath(owner, name)}/deploys`, { ref, environment });
  }
  getDeploy(id: string) {
    return this.json<Deploy>('GET', `/api/v1/deploys/${encodeURIComponent(id)}`);
  }
  async listDeploys(owner: string, name: string, environment?: string): Promise<Deploy[]> {
    const q = environment ? `?environment=${encodeURIComponent(environment)}` : '';
    return (await this.json<z.infer<typeof deployListAnswer>>('GET', `${repoPath(owner, name)}/deploys${q}`)).deploys;
  }
  /** Answers a deploy waiting at its approval gate (409 when it is not waiting). */
  decideDeploy(id: string, decision: 'approve' | 'reject', comment?: string) {
    return this.json<z.infer<typeof decisionAnswer>>('POST', `/api/v1/deploys/${encodeURIComponent(id)}/${decision}`, comment ? { comment } : {});
  }
  async cancelDeploy(id: string): Promise<void> {
    await this.request('POST', `/api/v1/deploys/${encodeURIComponent(id)}/cancel`);
  }

  /** Whether the platform accepts this client's token: any answer but 401 to an authenticated `GET /api/v1`. */
  async tokenAccepted(): Promise<boolean> {
    try {
      await this.request('GET', '/api/v1');
      return true;
    } catch (err) {
      if (err instanceof DotgitApiError && err.status !== 401) return true;
      if (err instanceof DotgitApiError) return false;
      throw err;
    }
  }

  /** `GET /api/v1/audit/verify`: whether the audit log's hash chains are intact (platform admin); `tenant` walks its shard only. */
  /** Starts a planned switchover of the Postgres primary (platform admins, ADR 0027); 202 with the workflow id. */
  switchover(candidate?: string) {
    return this.json<{ id: string; status: 'started' }>('POST', '/api/v1/admin/database/switchover', candidate ? { candidate } : {});
  }
  verifyAudit(tenant?: string) {
    return this.json<AuditVerification>('GET', `/api/v1/audit/verify${tenant ? `?tenant=${encodeURIComponent(tenant)}` : ''}`);
  }
  /** `GET /api/v1/audit`: events oldest first after the event id `after`; `next` is the following page's `after` (null at the end). */
  listAudit(q: { tenant?: string; after?: number; limit?: number } = {}) {
    const query = new URLSearchParams(Object.entries(q).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)])).toString();
    return this.json<{ events: AuditEntry[]; next: number | null }>('GET', `/api/v1/audit${query ? `?${query}` : ''}`);
  }

  /**
   * Follows the live events of a run (or a deploy) over Server-Sent Events, from the first one (or
   * after `after`) until the terminal `status` event. A dropped connection is resumed with
   * `Last-Event-ID`, so no event is lost or repeated; API errors (404, 403…) are thrown at once.
   */
  async *events(kind: 'run' | 'deploy', id: string, o: { after?: string; signal?: AbortSignal; reconnects?: number } = {}): AsyncGenerator<RunEvent> {
    const path = `/api/v1/${kind}s/${encodeURIComponent(id)}/events`;
    let last = o.after ?? '';
    for (let failures = 0; ; ) {
      let broken: unknown;
      try {
        const res = await this.request('GET', path, undefined, { headers: { accept: 'text/event-stream', ...(last ? { 'last-event-id': last } : {}) }, signal: o.signal });
        if (!res.body) throw new Error('the event stream has no body');
        const messages = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
        for await (const m of messages) {
          if (!m.event || !m.id) continue;
          failures = 0;
          last = m.id;
          const e = { id: m.id, event: m.event, data: JSON.parse(m.data) } as RunEvent;
          yield e;
          if (e.event === 'status' && (TERMINAL_DEPLOY_STATUSES as readonly string[]).concat(TERMINAL_STATUSES).includes(e.data.status)) return;
        }
      } catch (err) {
        if (err instanceof DotgitApiError || o.signal?.aborted) throw err;
        broken = err;
      }
      // The stream ended (or broke) before the terminal status: resume after the last event seen.
      if (++failures > (o.reconnects ?? 5)) throw new Error(`the event stream of ${kind} ${id} kept closing before the end`, { cause: broken });
      await new Promise((r) => setTimeout(r, 500 * failures));
    }
  }

  /** Polls a run until it ends (default every second, up to an hour). */
  waitForRun(id: string, options: WaitOptions<Run> = {}): Promise<Run> {
    return pollUntil(() => this.getRun(id), (r) => (TERMINAL_STATUSES as readonly string[]).includes(r.status), `run ${id}`, options);
  }

  /** Polls a deploy until it ends, or until `until` holds (e.g. it waits for approval). */
  waitForDeploy(id: string, options: WaitOptions<Deploy> & { until?: (d: Deploy) => boolean } = {}): Promise<Deploy> {
    const done = options.until ?? ((d: Deploy) => (TERMINAL_DEPLOY_STATUSES as readonly string[]).includes(d.status));
    return pollUntil(() => this.getDeploy(id), done, `deploy ${id}`, options);
  }
}

export interface WaitOptions<T> {
  /** Default 1000 ms. */
  intervalMs?: number;
  /** Default one hour. */
  timeoutMs?: number;
  onUpdate?: (current: T) => void;
}

function repoPath(owner: string, name: string): string {
  return `/api/v1/repos/${encodeURIComponent(owner)}/${encodeURIComponent(name)}`;
}

async function pollUntil<T extends { status: string }>(get: () => Promise<T>, done: (t: T) => boolean, what: string, o: WaitOptions<T>): Promise<T> {
  const deadline = Date.now() + (o.timeoutMs ?? 3_600_000);
  for (;;) {
    const current = await get();
    o.onUpdate?.(current);
    if (done(current)) return current;
    if (Date.now() > deadline) throw new Error(`${what} still ${current.status} after the timeout`);
    await new Promise((r) => setTimeout(r, o.intervalMs ?? 1000));
  }
}
