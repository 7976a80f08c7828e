import type { TenantFixture } from '../../helpers/api-client';

/** The kinds of the corpus, reported one test each. */
export type Kind = 'api-json' | 'names' | 'headers' | 'git' | 'pipeline' | 'oauth' | 'jwt';

/** What the cases run against: made once through the API, as a user would. */
export interface Ctx {
  /** Tenant with an admin user and a read/write/admin token. */
  t: TenantFixture;
  /** A read-only token of the same user. */
  readToken: string;
  /** The platform admin's token. */
  admin: string;
  /** A private repository of `t` with one commit on main (`head`). */
  repo: string;
  head: string;
  /** A manual run of `repo`'s main (the repository has no pipeline file, so it fails at once). */
  runId: string;
  /** A tenant that exists, of which `t` is no member. */
  otherTenant: string;
  /** JWTs made with chosen claims (see jwt.ts); filled in before the JWT cases are built. */
  jwts: Record<string, string>;
}

/**
 * One HTTP request as sent on the wire: headers exactly as given (none added but Host, Connection
 * and, unless `contentLength` says otherwise, Content-Length). A body that is not a string or
 * Buffer is sent as JSON with `Content-Type: application/json` (unless one is given).
 */
export interface Req {
  method: string;
  path: string;
  headers?: Array<[string, string]>;
  body?: unknown;
  /** The Content-Length header sent: a value, or null for none; default the body's length. */
  contentLength?: string | null;
  /** Bytes sent after the body (request smuggling attempts). */
  trailing?: string;
}

/**
 * What a refusal must look like.
 * - `api`: the CONTRACT body `{error: {code, message, requestId}}`, `message` (and `code`, when given) matching.
 * - `oauth`: OAuth's `{error, error_description}`; `message` is matched against "error: description".
 * - `git`: the git-server's refusal; `message` is matched against the whole body (an error body or git's own ERR line).
 *   `gitErrOk`: a 200 whose body is git's own `ERR` pkt-line is also the platform's clean answer (git's error channel).
 */
export interface Expect {
  shape: 'api' | 'oauth' | 'git';
  /** Exact status or any of these; default: any 4xx. */
  status?: number | number[];
  message: RegExp;
  code?: RegExp;
  gitErrOk?: boolean;
}

export interface HttpCase {
  kind: Kind;
  name: string;
  req: Req;
  expect: Expect;
}

/** The real git client, run with `args`; it must fail and say `stderr` (git's own error). */
export interface GitClientCase {
  kind: 'git';
  name: string;
  args: string[];
  stderr: RegExp;
}

/**
 * A pipeline file pushed with the real git client: the push starts a run that ends `failure` with a
 * message matching `message` (which names the line: `.dotgit/pipeline.yml:<line>:<col>: …`), or the
 * push is refused with a `remote:` message matching `message`.
 */
export interface PipelineCase {
  kind: 'pipeline';
  name: string;
  yaml: string;
  message: RegExp;
}

export type CaseBuilder<C> = (ctx: Ctx) => C[];
