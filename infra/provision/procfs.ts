import fs from 'node:fs';
import path from 'node:path';

/**
 * Just enough of /proc (Linux) to recognise processes left behind by a killed run: who they
 * are (argv, cwd), whether they still live, and whether anyone still owns them.
 */
export interface ProcInfo {
  pid: number;
  ppid: number;
  argv: string[];
  /** Working directory; Postgres chdirs into its data dir, so this identifies a postmaster. */
  cwd: string | null;
}

/** The process, or null when it does not exist or is a zombie (dead, waiting to be reaped). */
export function procInfo(pid: number): ProcInfo | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return null;
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    let cwd: string | null = null;
    try {
      cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      // not ours to read, or gone meanwhile
    }
    return { pid, ppid: Number(fields[1]), argv, cwd };
  } catch {
    return null;
  }
}

export function isAlive(pid: number): boolean {
  return procInfo(pid) !== null;
}

/**
 * True when whoever started the process is gone: it was re-parented to init or to a subreaper
 * that is not a Node process. A process whose parent is a live Node process (another `npm start`
 * or test run) is owned, and must not be killed by us.
 */
export function isOrphan(info: ProcInfo): boolean {
  if (info.ppid <= 1) return true;
  const parent = procInfo(info.ppid);
  if (!parent) return true;
  return !/^node(js)?(\d+)?$/.test(path.basename(parent.argv[0] ?? ''));
}

/** All live processes matching `pred`; used to prove nothing was left behind. */
export function findProcesses(pred: (p: ProcInfo) => boolean): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const info = procInfo(Number(name));
    if (info && pred(info)) out.push(info);
  }
  return out;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Whether `p` settles within `ms`; the timer is cleared either way so it never holds the process open. */
export async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Poll until the pid is gone; false on timeout. For processes that are not our children. */
export async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/**
 * End a process that is not our child (an orphan): each signal in turn, waiting `ms` after it.
 * Returns whether it is gone.
 */
export async function terminate(pid: number, steps: Array<[NodeJS.Signals, number]>): Promise<boolean> {
  for (const [signal, ms] of steps) {
    try {
      process.kill(pid, signal);
    } catch {
      return true;
    }
    if (await waitGone(pid, ms)) return true;
  }
  return !isAlive(pid);
}
