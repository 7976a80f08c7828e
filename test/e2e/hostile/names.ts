import { uniqueName } from '../../helpers/api-client';
import type { Ctx, HttpCase } from './types';

// Hostile resource names: tenants, users, repositories (in bodies and in paths), branches,
// secrets and environments. CONTRACT: names match ^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$, no "..",
// never ".git" twice; secret names are environment variable names; environments [A-Za-z0-9_-]{1,64}.

/** Names refused wherever an owner, user or repository name is taken. */
export const BAD_NAMES: Array<[string, string]> = [
  ['".."', '..'],
  ['"."', '.'],
  ['leading "-"', '-rf'],
  ['an option', '--upload-pack=touch x'],
  ['leading "."', '.hidden'],
  ['".git.git"', 'a.git.git'],
  ['101 characters', 'n'.repeat(101)],
  ['a slash', 'a/b'],
  ['a backslash', 'a\\b'],
  ['%2e%2e (literal)', '%2e%2e'],
  ['NUL inside', 'a\u0000b'],
  ['Cyrillic e (confusable)', 'wеb'],
  ['a space', 'a b'],
  ['a colon', 'a:b'],
  ['empty', ''],
  ['a tab', 'a\tb'],
  ['full-width letters', 'ａｂｃ'],
  ['zero-width space', 'a\u200bb'],
  ['right-to-left override', '\u202eabc'],
  ['".." inside', 'a..b'],
  ['a newline', 'a\nb'],
];

const NAME_PROBLEM = /must match|\.\.|\.git/;

export function nameCases(c: Ctx): HttpCase[] {
  const cases: HttpCase[] = [];
  const bearer = (token: string): Array<[string, string]> => [['Authorization', `Bearer ${token}`]];
  const api = (name: string, method: string, path: string, token: string, body: unknown, message: RegExp, status: number | number[] = 400) =>
    cases.push({ kind: 'names', name, req: { method, path, headers: bearer(token), body }, expect: { shape: 'api', status, message } });

  for (const [what, bad] of BAD_NAMES) {
    api(`tenant name ${what}`, 'POST', '/api/v1/tenants', c.admin, { name: bad }, new RegExp(`name ${NAME_PROBLEM.source}`));
    api(`user name ${what}`, 'POST', `/api/v1/tenants/${c.t.tenant}/users`, c.t.token, { username: bad, role: 'member' }, new RegExp(`username ${NAME_PROBLEM.source}`));
    api(`repository name ${what}`, 'POST', '/api/v1/repos', c.t.token, { owner: c.t.tenant, name: bad, visibility: 'private' }, new RegExp(`name ${NAME_PROBLEM.source}`));
  }
  api('token for a user name with NUL', 'POST', '/api/v1/tokens', c.t.token, { username: 'a\u0000b', scopes: ['read'] }, /username/);
  api('collaborator name ".."-free but leading "-"', 'PUT', `/api/v1/repos/${c.t.tenant}/${c.repo}/collaborators/-rf`, c.t.token, { access: 'read' }, /username|user|name/);

  // Names in paths. Encoded dots, slashes and NULs are refused at the edge.
  const repoBase = `/api/v1/repos/${c.t.tenant}/${c.repo}`;
  for (const [what, owner, repo, message] of [
    ['owner with leading "-"', '-rf', c.repo, /owner/],
    ['owner with leading "."', '.hidden', c.repo, /owner/],
    ['owner of 101 characters', 'o'.repeat(101), c.repo, /owner/],
    ['repository ".git.git"', c.t.tenant, `${c.repo}.git.git`, /repo/],
    ['repository "x.git"', c.t.tenant, 'x.git', /repo/],
    ['repository %2e%2e', c.t.tenant, '%2e%2e', /encoded dots/],
    ['repository with %00', c.t.tenant, 'a%00b', /encoded dots, slashes or NUL/],
    ['repository with encoded slash', c.t.tenant, 'a%2fb', /encoded dots, slashes/],
    ['repository with encoded RTL override', c.t.tenant, '%E2%80%AEabc', /repo/],
    ['repository with encoded space', c.t.tenant, 'a%20b', /repo/],
  ] as const) {
    api(`path: ${what}`, 'GET', `/api/v1/repos/${owner}/${repo}`, c.t.token, undefined, message);
  }
  api('path: users of tenant "-rf"', 'POST', '/api/v1/tenants/-rf/users', c.t.token, { username: uniqueName('h'), role: 'member' }, /tenant/);
  api('path: users of tenant ".."-suffixed', 'POST', '/api/v1/tenants/a../users', c.t.token, { username: uniqueName('h'), role: 'member' }, /tenant/);
  api('path: run id of 400 characters', 'GET', `/api/v1/runs/${'r'.repeat(400)}`, c.t.token, undefined, /run id/);
  api('path: deploy id of 500 characters', 'GET', `/api/v1/deploys/${'d'.repeat(500)}`, c.t.token, undefined, /deploy id/);
  api('path: webhook id of 20 digits', 'GET', `${repoBase}/webhooks/99999999999999999999`, c.t.token, undefined, /webhook id/);
  api('path: token id negative', 'DELETE', '/api/v1/tokens/-1', c.t.token, undefined, /token id/);
  api('path: token id 1e400', 'DELETE', '/api/v1/tokens/1e400', c.t.token, undefined, /token id/);

  // Secrets: environment variable names; DOTGIT_* and CI are the platform's.
  for (const [what, name, message] of [
    ['leading digit', '1ABC', /secret names/],
    ['leading "-"', '-X', /secret names/],
    ['a space', 'A%20B', /secret names/],
    ['101 characters', 'S'.repeat(101), /secret names/],
    ['reserved DOTGIT_', 'DOTGIT_TOKEN', /reserved/],
    ['reserved CI', 'CI', /reserved/],
    ['non-ASCII', '%C3%84X', /secret names/],
    ['a dot', 'A.B', /secret names/],
    ['Cyrillic A', '%D0%90B', /secret names/],
    ['%2e%2e', '%2e%2e', /encoded dots/],
  ] as const) {
    api(`secret name ${what}`, 'PUT', `${repoBase}/secrets/${name}`, c.t.token, { value: 'v' }, message);
  }
  api('secret environment "../x" in the query', 'DELETE', `${repoBase}/secrets/OK_NAME?environment=../x`, c.t.token, undefined, /environment/);
  api('secret environment of 65 characters', 'PUT', `${repoBase}/secrets/OK_NAME`, c.t.token, { value: 'v', environment: 'e'.repeat(65) }, /environment/);

  // Branches (protection patterns).
  for (const [what, branch] of [
    ['leading "-"', '-x'],
    ['".." inside', 'a..b'],
    ['"." component', 'a/./b'],
    ['a space', 'a%20b'],
    ['a tilde', 'a~1'],
    ['a caret', 'a%5E'],
    ['a colon', 'a:b'],
    ['"@{"', '%40%7Bx%7D'],
    ['300 characters', 'b'.repeat(300)],
    ['a component with leading "-"', 'release/-x'],
  ] as const) {
    api(`branch ${what}`, 'PUT', `${repoBase}/protections/${branch}`, c.t.token, { allowForcePush: false, allowDeletion: false }, /branch|dot segments/);
  }

  // Environments and filters in queries.
  api('deploys filtered by environment "../x"', 'GET', `${repoBase}/deploys?environment=../x`, c.t.token, undefined, /environment/);
  api('runs filtered by an unknown status', 'GET', `${repoBase}/runs?status=bogus`, c.t.token, undefined, /status/);
  api('runs filtered by status given twice', 'GET', `${repoBase}/runs?status=queued&status=success`, c.t.token, undefined, /status/);
  api('runs filtered by a commit that is no commit id', 'GET', `${repoBase}/runs?commit=zzzz`, c.t.token, undefined, /commit/);
  api('runs filtered by a ref with NUL', 'GET', `${repoBase}/runs?ref=ma%00in`, c.t.token, undefined, /\bref\b/);
  api('runs filtered by a ref of 10 000 characters', 'GET', `${repoBase}/runs?ref=${'r'.repeat(10_000)}`, c.t.token, undefined, /\bref\b/);
  const run = `/api/v1/runs/${encodeURIComponent(c.runId)}`;
  api('run logs for a job named with NUL', 'GET', `${run}/logs?job=a%00b`, c.t.token, undefined, /\bjob\b|no such job/, [400, 404]);
  api('run logs for a step of 10 000 characters', 'GET', `${run}/logs?job=build&step=${'s'.repeat(10_000)}`, c.t.token, undefined, /\bstep\b|no such job/, [400, 404]);
  api('artifact path with encoded ../', 'GET', `${run}/artifacts/..%2f..%2fetc%2fpasswd`, c.t.token, undefined, /encoded dots, slashes/);
  api('artifact path with dot segments', 'GET', `${run}/artifacts/../../etc/passwd`, c.t.token, undefined, /dot segments/);
  api('artifact path with an encoded NUL', 'GET', `${run}/artifacts/a%00b`, c.t.token, undefined, /NUL/);
  api('artifact of a job named with NUL', 'GET', `${run}/artifacts/out.txt?job=a%00b`, c.t.token, undefined, /\bjob\b|not found/, [400, 404]);
  return cases;
}
