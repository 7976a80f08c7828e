// The git hooks of every hosted repository (pre-receive, reference-transaction, post-receive). They do no policy of
// their own: they gather the facts only a hook can see (the ref updates on stdin, the push
// options, the fast-forward check inside the push's quarantine) and hand them to the git-server's
// internal API, then print its messages (git shows them as `remote: …`) and exit as it says.
'use strict';
const { execFileSync } = require('node:child_process');

const hook = process.argv[2];
// reference-transaction: its state (prepared, committed, aborted); the shell wrapper passes only these.
const state = process.argv[3];
const ZERO = /^0+$/;
// Only branch and tag updates are journaled (HEAD and other refs start nothing).
const JOURNALED = /^refs\/(heads|tags)\//;

function nonFastForward(oldSha, newSha) {
  if (ZERO.test(oldSha) || ZERO.test(newSha)) return false;
  try {
    // Commits reachable from the old tip but not the new one: any means history was rewritten.
    const out = execFileSync('git', ['rev-list', '--max-count=1', oldSha, `^${newSha}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return out.trim() !== '';
  } catch {
    return true; // unknown objects: treat as a rewrite, the safe side for protections
  }
}

function pushOptions() {
  const n = Number(process.env.GIT_PUSH_OPTION_COUNT || 0);
  const out = [];
  for (let i = 0; i < n && i < 100; i++) out.push(String(process.env[`GIT_PUSH_OPTION_${i}`] || ''));
  return out;
}

const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', async () => {
  let updates = Buffer.concat(chunks).toString('utf8').split('\n').filter(Boolean).map((line) => {
    const [oldSha, newSha, ref] = line.split(' ');
    return hook === 'pre-receive' ? { oldSha, newSha, ref, nonFastForward: nonFastForward(oldSha, newSha) } : { oldSha, newSha, ref };
  });
  if (hook === 'reference-transaction') {
    if (state !== 'prepared') return; // only `prepared` is journaled (see the shell hook)
    updates = updates.filter((u) => JOURNALED.test(u.ref || ''));
    if (updates.length === 0) return; // nothing to journal: no call at all
  }
  // pre-receive and a reference-transaction's `prepared` state gate the push: no answer, no push.
  const gates = hook === 'pre-receive' || (hook === 'reference-transaction' && state === 'prepared');
  let allow = !gates;
  try {
    const res = await fetch(`${process.env.DOTGIT_HOOK_URL}/${hook}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-dotgit-service': process.env.DOTGIT_HOOK_TOKEN },
      body: JSON.stringify({ updates, pushOptions: pushOptions(), state }),
      signal: AbortSignal.timeout(60000),
    });
    const body = await res.json().catch(() => ({}));
    for (const line of body.messages || []) process.stderr.write(line + '\n');
    if (res.ok && hook === 'pre-receive') allow = body.allow === true;
    else if (res.ok && gates) allow = true;
    if (!res.ok) process.stderr.write(`dotgit: the server could not ${gates ? 'check' : 'record'} this push (${res.status})\n`);
  } catch (err) {
    process.stderr.write(`dotgit: the server could not ${gates ? 'check' : 'record'} this push: ${err.message}\n`);
  }
  process.exitCode = allow ? 0 : 1;
});
