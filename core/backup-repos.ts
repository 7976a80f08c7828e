import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { runGit } from './git';
import type { ObjectStore } from './object-store';
import { BACKUP_PREFIX, type RepoBackupEntry } from './backup-types';
import { assertValidName } from './names';

/** Thrown when git cannot bundle or restore a repository (the activity is retried by Temporal). */
export class RepoBackupError extends Error {
  override readonly name = 'RepoBackupError';
}

/** `owner/name` of every bare repository under `reposDir` (`<owner>/<name>.git`). */
export async function listRepoDirs(reposDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const owner of await fs.readdir(reposDir).catch(() => [] as string[])) {
    for (const entry of await fs.readdir(path.join(reposDir, owner)).catch(() => [] as string[])) {
      if (entry.endsWith('.git')) out.push(`${owner}/${entry.slice(0, -4)}`);
    }
  }
  return out.sort();
}

export function repoDir(reposDir: string, fullName: string): string {
  const [owner, name] = fullName.split('/');
  return path.join(reposDir, assertValidName('owner', owner), `${assertValidName('repo', name)}.git`);
}

async function git(gitDir: string, args: string[], input?: string): Promise<string> {
  const r = await runGit(['--git-dir', gitDir, ...args], { input });
  if (r.code !== 0) throw new RepoBackupError(`git ${args[0]} ${args[1] ?? ''} in ${gitDir}: ${r.stderr.trim().slice(0, 400)}`);
  return r.stdout.toString('utf8');
}

async function readRefs(gitDir: string): Promise<{ refs: Record<string, string>; head?: string }> {
  const refs: Record<string, string> = {};
  for (const line of (await git(gitDir, ['for-each-ref', '--format=%(objectname) %(refname)'])).split('\n')) {
    const [sha, ref] = line.split(' ');
    if (sha && ref) refs[ref] = sha;
  }
  const head = await runGit(['--git-dir', gitDir, 'symbolic-ref', '-q', 'HEAD']);
  return { refs, head: head.code === 0 ? head.stdout.toString().trim() : undefined };
}

const sameState = (a: { refs: Record<string, string>; head?: string }, b: { refs: Record<string, string>; head?: string }) =>
  a.head === b.head && JSON.stringify(Object.entries(a.refs).sort()) === JSON.stringify(Object.entries(b.refs).sort());

/**
 * Backs up one repository into `backups/<backupId>/repos/<owner>/<name>.bundle`: nothing when its
 * refs did not move since `previous`, a full bundle when there is no previous entry or `base` is
 * asked, else an increment holding only objects the previous tips lack. Refs are read before and
 * after bundling; a push in between makes it try again, so the recorded refs are exactly the ones
 * whose objects the chain holds.
 */
export async function backupRepo(args: {
  store: ObjectStore;
  reposDir: string;
  fullName: string;
  backupId: string;
  previous?: RepoBackupEntry;
  base: boolean;
  now: () => Date;
}): Promise<RepoBackupEntry> {
  const gitDir = repoDir(args.reposDir, args.fullName);
  const key = `${BACKUP_PREFIX}/${args.backupId}/repos/${args.fullName}.bundle`;
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dotgit-bundle-'));
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      const before = await readRefs(gitDir);
      const capturedAt = args.now().toISOString();
      const config = await fs.readFile(path.join(gitDir, 'config'), 'utf8').catch(() => undefined);
      if (args.previous && !args.base && sameState(before, args.previous)) {
        return { ...args.previous, config, kind: 'unchanged', capturedAt };
      }
      const isBase = args.base || !args.previous;
      const revs: string[] = [];
      if (!isBase) {
        // Only tips that still exist: a force-push may have let git drop an old one.
        for (const sha of new Set(Object.values(args.previous!.refs))) {
          if ((await runGit(['--git-dir', gitDir, 'cat-file', '-e', sha])).code === 0) revs.push(`^${sha}`);
        }
      }
      const file = path.join(tmp, 'repo.bundle');
      const made = Object.keys(before.refs).length > 0 ? await runGit(['--git-dir', gitDir, 'bundle', 'create', '-q', file, '--all', '--stdin'], { input: revs.map((r) => `${r}\n`).join('') }) : undefined;
      // git refuses an empty bundle: refs moved only to objects the previous tips already hold.
      const empty = !made || (made.code !== 0 && /empty bundle/i.test(made.stderr));
      if (made && made.code !== 0 && !empty) throw new RepoBackupError(`git bundle create for ${args.fullName}: ${made.stderr.trim().slice(0, 400)}`);
      const after = await readRefs(gitDir);
      if (!sameState(before, after)) continue;
      if (!empty) await args.store.put(key, createReadStream(file));
      const prevChain = isBase ? [] : args.previous!.chain;
      return {
        refs: before.refs,
        head: before.head,
        config,
        chain: empty ? prevChain : [...prevChain, key],
        kind: isBase ? 'base' : 'increment',
        baseAt: isBase ? capturedAt : args.previous!.baseAt,
        capturedAt,
      };
    }
    throw new RepoBackupError(`${args.fullName} kept changing while it was being bundled; the next attempt will try again`);
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Restores one repository into a new bare repository at `targetDir` from its entry: unbundles the
 * chain in order (each bundle's prerequisites come from the ones before), then sets every ref and
 * HEAD exactly as recorded and checks the result with `git fsck --full`.
 */
export async function restoreRepo(args: { store: ObjectStore; entry: RepoBackupEntry; targetDir: string }): Promise<void> {
  const { store, entry, targetDir } = args;
  await fs.rm(targetDir, { recursive: true, force: true });
  await fs.mkdir(path.dirname(targetDir), { recursive: true });
  const r = await runGit(['init', '-q', '--bare', targetDir]);
  if (r.code !== 0) throw new RepoBackupError(`git init ${targetDir}: ${r.stderr}`);
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dotgit-unbundle-'));
  try {
    for (const key of entry.chain) {
      const file = path.join(tmp, 'part.bundle');
      await pipeline(await store.get(key), createWriteStream(file));
      await git(targetDir, ['bundle', 'unbundle', file]);
    }
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
  const updates = Object.entries(entry.refs).map(([ref, sha]) => `update ${ref} ${sha}\n`).join('');
  if (updates) await git(targetDir, ['update-ref', '--stdin'], updates);
  if (entry.head) await git(targetDir, ['symbolic-ref', 'HEAD', entry.head]);
  if (entry.config) await fs.writeFile(path.join(targetDir, 'config'), entry.config);
  await fsck(targetDir);
}

export async function fsck(gitDir: string): Promise<void> {
  await git(gitDir, ['fsck', '--full', '--no-progress']);
}

/** The refs and HEAD of a repository as `restoreRepo` records them (for comparisons). */
export async function repoState(gitDir: string) {
  return readRefs(gitDir);
}
