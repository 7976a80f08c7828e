import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runGit } from './git';
import { signServiceToken, SERVICE_HEADER } from './internal-identity';
import { isRootZone, replicaPath, type ReplicaZone } from './replica-zones';

/** A zone that cannot take writes now (its root is missing or not a directory, its server is down); retried. */
export class ZoneUnavailableError extends Error {
  override readonly name = 'ZoneUnavailableError';
}

export type Refs = Record<string, string>;

/**
 * A fingerprint of every ref: sha256 of `<sha> <ref>\n` lines in ref-name order. The git-server
 * records it at each push; a replica whose refs give the same one is up to date.
 */
export function fingerprintOf(refs: Refs): string {
  const lines = Object.keys(refs)
    .sort()
    .map((ref) => `${refs[ref]} ${ref}\n`)
    .join('');
  return createHash('sha256').update(lines).digest('hex');
}

export async function readRefs(gitDir: string): Promise<Refs> {
  const r = await runGit(['--git-dir', gitDir, 'for-each-ref', '--format=%(objectname) %(refname)']);
  if (r.code !== 0) throw new Error(`git for-each-ref in ${gitDir}: ${r.stderr.trim().slice(0, 300)}`);
  return parseRefLines(r.stdout.toString('utf8'), ' ');
}

function parseRefLines(text: string, sep: string): Refs {
  const refs: Refs = {};
  for (const line of text.split('\n')) {
    const at = line.indexOf(sep);
    if (at <= 0) continue;
    const ref = line.slice(at + 1).trim();
    // ls-remote also lists HEAD and peeled tags (`^{}`); neither is a ref of its own.
    if (ref.startsWith('refs/') && !ref.endsWith('^{}')) refs[ref] = line.slice(0, at);
  }
  return refs;
}

/** True when the directory holds a readable repository (HEAD and objects/ present). */
export async function isRepository(gitDir: string): Promise<boolean> {
  const ok = (p: string) => fs.access(p).then(() => true, () => false);
  return (await ok(path.join(gitDir, 'HEAD'))) && (await ok(path.join(gitDir, 'objects')));
}

async function git(args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  const r = await runGit(args, { env });
  if (r.code !== 0) throw new ZoneUnavailableError(`git ${args.filter((a) => !a.startsWith('http.extraHeader')).slice(0, 6).join(' ')}: ${r.stderr.trim().slice(0, 400)}`);
  return r.stdout.toString('utf8');
}

export interface ReplicaTarget {
  owner: string;
  repo: string;
  /** The primary bare repository. */
  primaryDir: string;
}

/** The primary's HEAD (a `refs/heads/…` name) a sync to a url zone sends along: `push --mirror` carries none, and fetches served from the replica need it. */
export const REPLICA_HEAD_HEADER = 'x-dotgit-replica-head';

/** Where a url zone's git-server receives replicas (internal API, never through the gateway). */
export function zoneRepoUrl(zone: { url: string }, owner: string, repo: string): string {
  return `${zone.url.replace(/\/+$/, '')}/internal/replica/${encodeURIComponent(owner)}/${encodeURIComponent(repo)}.git`;
}

/** `-c http.extraHeader=…` carrying a short-lived replication token of this installation. */
async function authArgs(internalSecret: string, owner: string, repo: string): Promise<string[]> {
  const token = await signServiceToken(internalSecret, 'replication', { repo: `${owner}/${repo}` }, 600);
  return ['-c', `http.extraHeader=${SERVICE_HEADER}: ${token}`];
}

/** The refs a zone holds for the repository; undefined when it has no copy yet. */
export async function zoneRefs(zone: ReplicaZone, t: Omit<ReplicaTarget, 'primaryDir'>, internalSecret: string): Promise<Refs | undefined> {
  if (isRootZone(zone)) {
    const dir = replicaPath(zone, t.owner, t.repo);
    return (await isRepository(dir)) ? readRefs(dir) : undefined;
  }
  const out = await git([...(await authArgs(internalSecret, t.owner, t.repo)), 'ls-remote', zoneRepoUrl(zone, t.owner, t.repo)], { GIT_TERMINAL_PROMPT: '0' });
  return parseRefLines(out, '\t');
}

/**
 * Brings one zone's copy to the primary's refs exactly (new, moved, force-pushed and deleted refs,
 * HEAD, the repository's git config). A root zone fetches from the primary into its own bare
 * repository; a url zone gets `git push --mirror`. Answers the refs the replica holds afterwards.
 */
export async function syncZone(zone: ReplicaZone, t: ReplicaTarget, internalSecret: string): Promise<Refs> {
  if (!isRootZone(zone)) {
    const head = await runGit(['--git-dir', t.primaryDir, 'symbolic-ref', '-q', 'HEAD']);
    const headArgs = head.code === 0 ? ['-c', `http.extraHeader=${REPLICA_HEAD_HEADER}: ${head.stdout.toString().trim()}`] : [];
    await git(['--git-dir', t.primaryDir, ...(await authArgs(internalSecret, t.owner, t.repo)), ...headArgs, 'push', '--mirror', '--quiet', zoneRepoUrl(zone, t.owner, t.repo)], { GIT_TERMINAL_PROMPT: '0' });
    return (await zoneRefs(zone, t, internalSecret))!;
  }
  // The root itself is never created: a missing root is an unmounted or lost volume, not an empty zone.
  const root = await fs.stat(zone.root).catch(() => undefined);
  if (!root?.isDirectory()) throw new ZoneUnavailableError(`zone ${zone.name}: ${zone.root} is not available`);
  const dir = replicaPath(zone, t.owner, t.repo);
  if (!(await isRepository(dir))) {
    await fs.mkdir(path.dirname(dir), { recursive: true }).catch((err: Error) => {
      throw new ZoneUnavailableError(`zone ${zone.name}: ${err.message}`);
    });
    await git(['init', '--bare', '--quiet', dir]);
  }
  await git(['--git-dir', dir, 'fetch', '--quiet', '--prune', '--no-write-fetch-head', t.primaryDir, '+refs/*:refs/*']);
  const head = await runGit(['--git-dir', t.primaryDir, 'symbolic-ref', '-q', 'HEAD']);
  if (head.code === 0) await git(['--git-dir', dir, 'symbolic-ref', 'HEAD', head.stdout.toString().trim()]);
  // Same settings as the primary (filters, fsck), so a failed-over fetch behaves the same.
  const config = await fs.readFile(path.join(t.primaryDir, 'config')).catch(() => undefined);
  if (config) await fs.writeFile(path.join(dir, 'config'), config);
  return readRefs(dir);
}
