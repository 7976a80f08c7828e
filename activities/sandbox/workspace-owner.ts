import { lchown, readdir, stat } from 'node:fs/promises';
import path from 'node:path';

/**
 * Gives the workspace to the sandbox user, so a step running as an unprivileged uid can write to
 * it (gVisor enforces permissions like Linux does). Symlinks are changed themselves (lchown), never
 * followed, so a link planted in a checkout cannot redirect the chown to a host file.
 * Only possible when the worker runs as root; otherwise the caller must create the workspace
 * with the right owner.
 */
export async function chownTree(root: string, uid: number, gid: number): Promise<void> {
  await lchown(root, uid, gid);
  // Sequential on purpose: a parallel walk of a large tree (node_modules) runs out of descriptors.
  for (const entry of await readdir(root, { withFileTypes: true })) {
    const p = path.join(root, entry.name);
    if (entry.isDirectory()) await chownTree(p, uid, gid);
    else await lchown(p, uid, gid);
  }
}

/**
 * Throws unless every ancestor of `dir` can be traversed by uid/gid. An unprivileged bwrap resolves
 * its bind sources as that uid, and would otherwise fail with a terse "Permission denied".
 */
export async function assertTraversable(dir: string, uid: number, gid: number): Promise<void> {
  for (let d = path.dirname(path.resolve(dir)); ; d = path.dirname(d)) {
    const st = await stat(d);
    const bit = st.uid === uid ? 0o100 : st.gid === gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) {
      throw new Error(`workspace ${dir} is not reachable by the sandbox uid ${uid}: ${d} is not searchable (mode ${(st.mode & 0o777).toString(8)}); create workspaces under directories with o+x`);
    }
    if (d === '/') return;
  }
}
