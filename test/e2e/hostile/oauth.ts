import type { Ctx, HttpCase, Req } from './types';

// Hostile requests to the OAuth 2.0 token endpoint (client credentials). Errors use OAuth's own
// body, `{error, error_description}` (RFC 6749 §5.2).

const b64 = (s: string) => Buffer.from(s, 'latin1').toString('base64');

export function oauthCases(c: Ctx): HttpCase[] {
  const cases: HttpCase[] = [];
  const add = (name: string, req: Partial<Req>, message: RegExp, status?: number | number[]) =>
    cases.push({ kind: 'oauth', name, req: { method: 'POST', path: '/oauth/token', ...req }, expect: { shape: 'oauth', message, status } });
  const form = (fields: Record<string, string>, headers: Array<[string, string]> = []): Partial<Req> => ({
    headers: [['Content-Type', 'application/x-www-form-urlencoded'], ...headers],
    body: new URLSearchParams(fields).toString(),
  });
  const json = (body: unknown): Partial<Req> => ({ headers: [['Content-Type', 'application/json']], body: typeof body === 'string' ? body : JSON.stringify(body) });
  const CLIENT = /invalid_client|invalid_request/;
  const GRANT = 'client_credentials';

  // Basic credentials.
  add('Basic with a bad %-escape in the id', form({ grant_type: GRANT }, [['Authorization', `Basic ${b64(`%zz:${c.t.token}`)}`]]), CLIENT, [400, 401]);
  add('Basic with a bad %-escape in the secret', form({ grant_type: GRANT }, [['Authorization', `Basic ${b64(`${c.t.username}:%E0%A4%A`)}`]]), CLIENT, [400, 401]);
  add('Basic with a lone %', form({ grant_type: GRANT }, [['Authorization', `Basic ${b64('%:%')}`]]), CLIENT, [400, 401]);
  add('Basic that is not base64', form({ grant_type: GRANT }, [['Authorization', 'Basic ***']]), CLIENT, [400, 401]);
  add('Basic without a colon', form({ grant_type: GRANT }, [['Authorization', `Basic ${b64(c.t.username)}`]]), CLIENT, [400, 401]);
  add('Basic with an empty secret', form({ grant_type: GRANT }, [['Authorization', `Basic ${b64(`${c.t.username}:`)}`]]), CLIENT, [400, 401]);
  add('Basic of a wrong secret', form({ grant_type: GRANT }, [['Authorization', `Basic ${b64(`${c.t.username}:dg_wrong`)}`]]), /invalid_client/, 401);
  add('Basic of another user\'s token', form({ grant_type: GRANT }, [['Authorization', `Basic ${b64(`someone-else:${c.t.token}`)}`]]), /invalid_client/, 401);
  add('Basic with a 600-character secret', form({ grant_type: GRANT }, [['Authorization', `Basic ${b64(`${c.t.username}:${'s'.repeat(600)}`)}`]]), /invalid_client/, 401);
  add('Basic with a NUL in the id', form({ grant_type: GRANT }, [['Authorization', `Basic ${b64(`${c.t.username}\u0000:${c.t.token}`)}`]]), CLIENT, [400, 401]);
  add('Basic and body credentials both', form({ grant_type: GRANT, client_id: c.t.username, client_secret: c.t.token }, [['Authorization', `Basic ${b64(`${c.t.username}:dg_wrong`)}`]]), CLIENT, [400, 401]);

  // Body credentials of the wrong types.
  for (const [what, secret] of [['a number', 12345], ['an array', [c.t.token]], ['an object', { token: c.t.token }], ['null', null], ['true', true]] as const) {
    add(`client_secret as ${what}`, json({ grant_type: GRANT, client_id: c.t.username, client_secret: secret }), CLIENT, [400, 401]);
  }
  for (const [what, id] of [['a number', 1], ['an array', [c.t.username]], ['an object', { $ne: '' }]] as const) {
    add(`client_id as ${what}`, json({ grant_type: GRANT, client_id: id, client_secret: c.t.token }), CLIENT, [400, 401]);
  }
  add('scope as a number', json({ grant_type: GRANT, client_id: c.t.username, client_secret: c.t.token, scope: 7 }), /invalid_scope|invalid_request/, 400);
  add('scope beyond the client\'s', form({ grant_type: GRANT, client_id: c.t.username, client_secret: c.readToken, scope: 'admin' }), /invalid_scope/, 400);
  add('an unknown scope', form({ grant_type: GRANT, client_id: c.t.username, client_secret: c.t.token, scope: 'superuser' }), /invalid_scope/, 400);

  // Bodies.
  add('malformed JSON', json('{"grant_type": "client_credentials", '), /invalid_request/, 400);
  add('JSON array body', json(`[${JSON.stringify({ grant_type: GRANT })}]`), /invalid_request|unsupported_grant_type/, 400);
  add('a 20 kB form body', form({ grant_type: GRANT, client_id: c.t.username, client_secret: c.t.token, pad: 'x'.repeat(20_000) }), /invalid_request/, [400, 413]);
  add('a 20 kB JSON body', json({ grant_type: GRANT, client_id: c.t.username, client_secret: c.t.token, pad: 'x'.repeat(20_000) }), /invalid_request/, [400, 413]);
  add('a form body with a bad %-escape', { headers: [['Content-Type', 'application/x-www-form-urlencoded']], body: `grant_type=${GRANT}&client_id=%zz&client_secret=%E0%A4%A` }, CLIENT, [400, 401]);
  add('a text/plain body', { headers: [['Content-Type', 'text/plain']], body: `grant_type=${GRANT}` }, /invalid_request|unsupported_grant_type/, 400);

  // Grant types.
  add('no grant_type', form({ client_id: c.t.username, client_secret: c.t.token }), /unsupported_grant_type|invalid_request/, 400);
  add('grant_type password', form({ grant_type: 'password', username: c.t.username, password: c.t.token }), /unsupported_grant_type/, 400);
  add('grant_type authorization_code', form({ grant_type: 'authorization_code', code: 'x' }), /unsupported_grant_type/, 400);
  add('grant_type as an array', json({ grant_type: [GRANT], client_id: c.t.username, client_secret: c.t.token }), /unsupported_grant_type|invalid_request/, 400);
  add('grant_type with a NUL', form({ grant_type: `${GRANT}\u0000`, client_id: c.t.username, client_secret: c.t.token }), /unsupported_grant_type|invalid_request/, 400);
  add('grant_type given twice', { headers: [['Content-Type', 'application/x-www-form-urlencoded']], body: `grant_type=${GRANT}&grant_type=password&client_id=${c.t.username}&client_secret=${c.t.token}` }, /unsupported_grant_type|invalid_request/, 400);
  return cases;
}
