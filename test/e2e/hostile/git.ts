import { gzipSync } from 'node:zlib';
import { cloneUrl } from '../../helpers/git';
import type { Ctx, GitClientCase, HttpCase, Req } from './types';

// Hostile git smart-HTTP requests (service parameter, pkt-lines, wants, gzip, protocol v2
// commands, sizes) sent raw, and hostile fetches and pushes made with the real git client.

/** One pkt-line: 4 hex digits of length (including themselves), then the payload. */
export const pkt = (s: string) => (Buffer.byteLength(s) + 4).toString(16).padStart(4, '0') + s;
const UNKNOWN = 'deadbeef'.repeat(5);
const basic = (token: string) => `Basic ${Buffer.from(`x:${token}`).toString('base64')}`;

let bomb: Buffer | undefined;
/** 70 MiB of zeros, gzipped to ~70 kB: over the 64 MiB a fetch request may inflate to. */
const gzipBomb = () => (bomb ??= gzipSync(Buffer.alloc(70 * 1024 * 1024)));

export function gitHttpCases(c: Ctx): HttpCase[] {
  const cases: HttpCase[] = [];
  const base = `/${c.t.tenant}/${c.repo}.git`;
  const add = (name: string, req: Req, message: RegExp, status?: number | number[], gitErrOk = false) =>
    cases.push({ kind: 'git', name, req, expect: { shape: 'git', message, status, gitErrOk } });
  const refs = (query: string, headers: Array<[string, string]> = [['Authorization', basic(c.t.token)]], path = base): Req => ({ method: 'GET', path: `${path}/info/refs${query}`, headers });
  const post = (service: 'git-upload-pack' | 'git-receive-pack', body: string | Buffer, headers: Array<[string, string]> = [], token = c.t.token): Req => ({
    method: 'POST',
    path: `${base}/${service}`,
    headers: [['Authorization', basic(token)], ['Content-Type', `application/x-${service}-request`], ...headers],
    body,
  });
  const v2: Array<[string, string]> = [['Git-Protocol', 'version=2']];

  // The ref advertisement.
  add('info/refs without service', refs(''), /service must be/, 400);
  add('info/refs with an unknown service', refs('?service=git-frobnicate'), /service must be/, 400);
  add('info/refs with service given twice', refs('?service=git-upload-pack&service=git-receive-pack'), /service must be/, 400);
  add('info/refs with NUL after the service', refs('?service=git-upload-pack%00'), /service must be/, 400);
  add('info/refs with an option as service', refs('?service=--upload-pack=touch%20x'), /service must be/, 400);
  add('info/refs with Git-Protocol of odd characters', refs('?service=git-upload-pack', [['Authorization', basic(c.t.token)], ['Git-Protocol', 'version=2;rm -rf']]), /Git-Protocol/, 400);
  add('info/refs with Git-Protocol of 300 characters', refs('?service=git-upload-pack', [['Authorization', basic(c.t.token)], ['Git-Protocol', 'v'.repeat(300)]]), /Git-Protocol/, 400);
  add('info/refs of a private repository, anonymous', refs('?service=git-upload-pack', []), /authentication required/, 401);
  add('info/refs for a push with a read token', refs('?service=git-receive-pack', [['Authorization', basic(c.readToken)]]), /may not push/, 403);
  add('info/refs of owner "-rf"', refs('?service=git-upload-pack', undefined, `/-rf/${c.repo}.git`), /owner/, 400);
  add('info/refs of repository ".git.git"', refs('?service=git-upload-pack', undefined, `/${c.t.tenant}/${c.repo}.git.git`), /repo/, 400);
  add('info/refs of an unknown repository', refs('?service=git-upload-pack', undefined, `/${c.t.tenant}/no-such-repo.git`), /not found/, 404);
  add('info/refs of another tenant\'s repository name', refs('?service=git-upload-pack', undefined, `/${c.otherTenant}/${c.repo}.git`), /not found/, 404);
  add('info/refs through %2e%2e', refs('?service=git-upload-pack', undefined, `/${c.t.tenant}/%2e%2e/${c.repo}.git`), /encoded dots/, 400);
  add('dumb HTTP: HEAD file', { method: 'GET', path: `${base}/HEAD`, headers: [['Authorization', basic(c.t.token)]] }, /no such git endpoint|not found|dumb/i, 404);
  add('dumb HTTP: objects/info/packs', { method: 'GET', path: `${base}/objects/info/packs`, headers: [['Authorization', basic(c.t.token)]] }, /no such git endpoint|not found|dumb/i, 404);
  add('dumb HTTP: config file', { method: 'GET', path: `${base}/config`, headers: [['Authorization', basic(c.t.token)]] }, /no such git endpoint|not found|dumb/i, 404);

  // upload-pack (fetch) requests.
  // What git itself says of a broken request (the git-server passes its first line on).
  const PROTOCOL = /protocol error|bad line length|expected|unexpected/i;
  add('upload-pack: plain text body', post('git-upload-pack', 'hello world, not pkt-lines\n'), PROTOCOL, 400);
  add('upload-pack: length not hex', post('git-upload-pack', 'zzzzwant x\n0000'), PROTOCOL, 400);
  add('upload-pack: length 0003', post('git-upload-pack', '0003'), PROTOCOL, 400);
  add('upload-pack: truncated pkt-line', post('git-upload-pack', '0032want '), /hung up unexpectedly|protocol error/, 400);
  add('upload-pack: pkt-line longer than 65520', post('git-upload-pack', `ffff${'a'.repeat(70_000)}`), PROTOCOL, 400);
  add('upload-pack: want of no object id', post('git-upload-pack', `${pkt('want xyz\n')}0000${pkt('done\n')}`), /want|protocol|expected|not our ref|invalid/i, 400, true);
  add('upload-pack: want of an unknown commit (v0)', post('git-upload-pack', `${pkt(`want ${UNKNOWN} multi_ack_detailed side-band-64k ofs-delta\n`)}0000${pkt('done\n')}`), /not our ref/, undefined, true);
  add('upload-pack: want of an unknown commit (v2)', post('git-upload-pack', `${pkt('command=fetch\n')}0001${pkt(`want ${UNKNOWN}\n`)}${pkt('done\n')}0000`, v2), /not our ref/, undefined, true);
  add('upload-pack: want of a SHA-256 id in a SHA-1 repository (v2)', post('git-upload-pack', `${pkt('command=fetch\n')}0001${pkt(`want ${'ab'.repeat(32)}\n`)}${pkt('done\n')}0000`, v2), /not our ref|want|invalid|expected/i, undefined, true);
  add('upload-pack: v2 unknown command', post('git-upload-pack', `${pkt('command=frobnicate\n')}0000`, v2), /frobnicate|command/i, 400, true);
  add('upload-pack: v2 ls-refs with an unknown argument', post('git-upload-pack', `${pkt('command=ls-refs\n')}0001${pkt('bogus-argument\n')}0000`, v2), /bogus|unexpected|argument/i, 400, true);
  add('upload-pack: v2 fetch without the delimiter', post('git-upload-pack', `${pkt('command=fetch\n')}${pkt(`want ${c.head}\n`)}0000`, v2), /expected|unexpected|capabilit|want|delim/i, 400, true);
  add('upload-pack: v2 command of 60 kB', post('git-upload-pack', `${pkt(`command=${'x'.repeat(60_000)}\n`)}0000`, v2), /command|invalid|unknown/i, 400, true);
  add('upload-pack: gzip header on a body that is not gzip', post('git-upload-pack', 'not gzip at all', [['Content-Encoding', 'gzip']]), /request body|gzip|header check/i, 400);
  add('upload-pack: truncated gzip body', post('git-upload-pack', gzipSync(Buffer.from(`${pkt(`want ${c.head}\n`)}0000`)).subarray(0, 12), [['Content-Encoding', 'gzip']]), /request body|gzip|unexpected end/i, 400);
  add('upload-pack: Content-Encoding br', post('git-upload-pack', '0000', [['Content-Encoding', 'br']]), /Content-Encoding/, 400);
  add('upload-pack: gzip body inflating past 64 MiB', post('git-upload-pack', gzipBomb(), [['Content-Encoding', 'gzip']]), /limited to \d+ bytes/, 413);

  // receive-pack (push) requests.
  add('receive-pack: plain text body', post('git-receive-pack', 'hello world, not pkt-lines\n'), PROTOCOL, 400);
  add('receive-pack: command with a malformed old id', post('git-receive-pack', `${pkt(`zzzz ${c.head} refs/heads/x\0report-status\n`)}0000`), PROTOCOL, 400, true);
  add('receive-pack: pkt-line longer than 65520', post('git-receive-pack', `ffff${'a'.repeat(70_000)}`), PROTOCOL, 400);
  add('receive-pack: gzip header on a body that is not gzip', post('git-receive-pack', 'not gzip at all', [['Content-Encoding', 'gzip']]), /request body|gzip|header check/i, 400);
  add('receive-pack: Content-Encoding br', post('git-receive-pack', '0000', [['Content-Encoding', 'br']]), /Content-Encoding/, 400);
  add('receive-pack with a read token', post('git-receive-pack', '0000', [], c.readToken), /may not push/, 403);
  add('receive-pack anonymous', { method: 'POST', path: `${base}/git-receive-pack`, headers: [['Content-Type', 'application/x-git-receive-pack-request']], body: '0000' }, /authentication required/, 401);
  add('receive-pack declaring 3 GB', { ...post('git-receive-pack', '0000'), contentLength: String(3 * 1024 ** 3) }, /limited to \d+ bytes/, 413);
  return cases;
}

/** Fetches and pushes with the real git client that must fail with git's own, clear error. */
export function gitClientCases(c: Ctx): GitClientCase[] {
  const url = cloneUrl(c.t.tenant, c.repo, c.t.token);
  return [
    { kind: 'git', name: 'git fetch of an unknown commit (protocol v0)', args: ['-c', 'protocol.version=0', 'fetch', url, UNKNOWN], stderr: /not our ref/ },
    { kind: 'git', name: 'git fetch of an unknown commit (protocol v2)', args: ['-c', 'protocol.version=2', 'fetch', url, UNKNOWN], stderr: /not our ref|couldn't find remote ref/ },
    { kind: 'git', name: 'git ls-remote with a wrong token', args: ['ls-remote', cloneUrl(c.t.tenant, c.repo, 'dg_wrong-token')], stderr: /Authentication failed|401/ },
    { kind: 'git', name: 'git ls-remote of a ".git.git" repository', args: ['ls-remote', cloneUrl(c.t.tenant, `${c.repo}.git`, c.t.token)], stderr: /returned error: 400|must match/ },
    { kind: 'git', name: 'git ls-remote of an owner with leading "-"', args: ['ls-remote', cloneUrl('-rf', c.repo, c.t.token)], stderr: /returned error: 400|must match/ },
    { kind: 'git', name: 'git push with a read token', args: ['push', cloneUrl(c.t.tenant, c.repo, c.readToken), `${c.head}:refs/heads/from-read-token`], stderr: /403|may not push/ },
    { kind: 'git', name: 'git ls-remote of another tenant\'s name', args: ['ls-remote', cloneUrl(c.otherTenant, c.repo, c.t.token)], stderr: /not found|404/ },
  ];
}
