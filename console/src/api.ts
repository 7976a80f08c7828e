/**
 * The console's only way to the platform: the same-origin REST API, authenticated by the session
 * cookie (the browser sends it; no token is ever held in script). Writes carry the session's CSRF
 * token, which the gateway checks.
 */
export interface Session {
  username: string;
  tenant: string;
  role: string;
  platformAdmin: boolean;
  scopes: string[];
  csrf: string;
  expiresAt: string;
  /** The Temporal Web UI's workflow list, when the platform knows it. */
  temporalUiUrl: string | null;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let session: Session | null = null;
const listeners = new Set<(s: Session | null) => void>();

export const currentSession = () => session;
export function onSession(fn: (s: Session | null) => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
function setSession(s: Session | null) {
  session = s;
  for (const fn of listeners) fn(s);
}

async function call<T>(method: string, url: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && session) headers['x-csrf-token'] = session.csrf;
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  if (res.status === 204) return undefined as T;
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const e = (data as { error?: { code?: string; message?: string } }).error ?? {};
    // The session ended (expired, signed out elsewhere, its token revoked): back to sign-in.
    if (res.status === 401 && session) setSession(null);
    throw new ApiError(res.status, e.code ?? 'error', e.message ?? `${res.status} ${res.statusText}`);
  }
  return data as T;
}

export const api = {
  get: <T>(url: string) => call<T>('GET', url),
  post: <T>(url: string, body: unknown = {}) => call<T>('POST', url, body),
  put: <T>(url: string, body: unknown = {}) => call<T>('PUT', url, body),
  del: <T>(url: string) => call<T>('DELETE', url),
};

/** Who is signed in, or null. */
export async function loadSession(): Promise<Session | null> {
  try {
    setSession(await call<Session>('GET', '/console/session'));
  } catch {
    setSession(null);
  }
  return session;
}

export async function signIn(credential: { token: string } | { code: string }): Promise<Session> {
  const s = await call<Session>('POST', '/console/session', credential);
  setSession(s);
  return s;
}

export async function signOut(): Promise<void> {
  await call('DELETE', '/console/session').catch(() => undefined);
  setSession(null);
}

export const enc = encodeURIComponent;

export interface Step {
  job: string;
  name: string;
  status: string;
  exitCode: number | null;
  startedAt: string | null;
  finishedAt: string | null;
  attempt?: number;
  host?: string | null;
  /** Why the step's job waits (issue 17 item 8), while it does. */
  pending?: Pending | null;
}
export interface Pending {
  reason: string;
  message: string;
}
export interface Run {
  id: string;
  repo: string;
  ref: string;
  commit: string;
  status: string;
  message?: string | null;
  event?: string | null;
  attempt?: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  steps: Step[];
  /** Why the run waits, while it does. */
  pending?: Pending | null;
  /** GET /runs/{id}: the run's jobs with the jobs each needs (the graph's edges). */
  jobs?: Array<{ name: string; needs: string[] }>;
  stepsSummary?: Record<string, number>;
}
export interface Repo {
  owner: string;
  name: string;
  visibility: string;
  cloneUrl: string;
  defaultBranch?: string | null;
}
