import { platformInfo } from '../harness/platform-info';

export interface ApiAnswer<T = unknown> {
  status: number;
  body: T;
  text: string;
  headers: Headers;
}

/** A thin client of the gateway for tests: JSON in, JSON (or text) out, never throws on 4xx/5xx. */
export async function api<T = any>(method: string, path: string, opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<ApiAnswer<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${platformInfo().gatewayUrl}${path}`, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  const text = await res.text();
  let body: unknown = text;
  if ((res.headers.get('content-type') ?? '').includes('json')) body = JSON.parse(text);
  return { status: res.status, body: body as T, text, headers: res.headers };
}

let counter = 0;
/** A name unique within the test run, valid as tenant/repo/user name. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`;
}

export interface TenantFixture {
  tenant: string;
  username: string;
  token: string;
}

/** A tenant with an admin user holding a read/write/admin token, made through the API as a user would. */
export async function createTenantWithAdmin(): Promise<TenantFixture> {
  const admin = platformInfo().adminToken;
  const tenant = uniqueName('t');
  const t = await api('POST', '/api/v1/tenants', { token: admin, body: { name: tenant } });
  if (t.status !== 201) throw new Error(`tenant: ${t.status} ${t.text}`);
  const username = uniqueName('u');
  const u = await api('POST', `/api/v1/tenants/${tenant}/users`, { token: admin, body: { username, role: 'admin' } });
  if (u.status !== 201) throw new Error(`user: ${u.status} ${u.text}`);
  const tok = await api<{ token: string }>('POST', '/api/v1/tokens', { token: admin, body: { username, scopes: ['read', 'write', 'admin'] } });
  if (tok.status !== 201) throw new Error(`token: ${tok.status} ${tok.text}`);
  return { tenant, username, token: tok.body.token };
}

/** Polls a run until it reaches a terminal state. */
export async function waitForRun(id: string, token: string, timeoutMs = 120_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  let last: ApiAnswer | undefined;
  while (Date.now() < deadline) {
    last = await api('GET', `/api/v1/runs/${encodeURIComponent(id)}`, { token });
    if (last.status === 200 && ['success', 'failure', 'cancelled'].includes((last.body as { status: string }).status)) return last.body;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`run ${id} did not finish: ${last?.status} ${last?.text}`);
}

/** A private repository of `owner`'s tenant, made through the API; answers its name. */
export async function createPrivateRepo(owner: TenantFixture, prefix: string): Promise<string> {
  const name = uniqueName(prefix);
  const r = await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name, visibility: 'private' } });
  if (r.status !== 201) throw new Error(`repo: ${r.status} ${r.text}`);
  return name;
}
