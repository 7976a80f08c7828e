import { createHash, randomBytes } from 'node:crypto';
import type { Queryable } from './db';
import { insertSigninCode } from './stores/console-sessions-store';
import { hashToken } from './tokens';

/** How long a one-time sign-in link works if nobody opens it (a day: `npm start` makes a new one each start). */
export const SIGNIN_LINK_TTL_SECONDS = 24 * 3600;

/**
 * A one-time web console sign-in code for an API token (`npm start` prints a link with one for the
 * admin, like Jupyter's token URL; ADR 0032). Only the code's hash is stored (in the global
 * database, beside the tokens), and using it deletes it.
 */
export async function createSigninCode(q: Queryable, token: string, ttlSeconds = SIGNIN_LINK_TTL_SECONDS): Promise<string> {
  const code = randomBytes(32).toString('base64url');
  const codeHash = createHash('sha256').update(code, 'utf8').digest();
  if (!(await insertSigninCode(q, { codeHash, tokenHash: hashToken(token), ttlSeconds }))) throw new Error('no live token to make a sign-in code for');
  return code;
}

/**
 * The link for a code: it rides in the URL's fragment, which browsers never send to a server, so it
 * reaches no request log or Referer; the console's sign-in page posts it once and drops it from the
 * address bar.
 */
export function signinLink(baseUrl: string, code: string): string {
  return `${baseUrl.replace(/\/$/, '')}/signin#code=${code}`;
}
