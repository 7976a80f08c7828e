/**
 * What the benchmark reads about a running process from /proc: CPU time (own and reaped
 * children's), resident memory, and its descendants. Linux only, like the platform itself.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { sleep } from './lib';

/** Clock ticks per second of /proc/<pid>/stat (`getconf CLK_TCK`, 100 almost everywhere). */
export const CLOCK_TICKS = (() => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

export interface CpuTicks {
  utime: number;
  stime: number;
  /** CPU of children the process has waited for (git upload-pack and its pack-objects). */
  cutime: number;
  cstime: number;
}

/** utime, stime, cutime, cstime of /proc/<pid>/stat (fields 14–17), in clock ticks. */
export function cpuTicks(pid: number): CpuTicks {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may contain spaces: split after its last `)`.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state), so field n is rest[n - 3].
  const field = (n: number) => Number(rest[n - 3]);
  return { utime: field(14), stime: field(15), cutime: field(16), cstime: field(17) };
}

/** Total CPU (own + reaped children) in milliseconds. */
export function cpuMs(t: CpuTicks): number {
  return ((t.utime + t.stime + t.cutime + t.cstime) * 1000) / CLOCK_TICKS;
}

function statusKb(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!m) throw new Error(`no ${key} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

export const rssBytes = (pid: number) => statusKb(pid, 'VmRSS');
export const hwmBytes = (pid: number) => statusKb(pid, 'VmHWM');

/** Direct children of a process (all its threads' children). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
      } catch {
        // thread gone
      }
    }
  } catch {
    // process gone
  }
  return out;
}

/** Every descendant of a process (children, their children, …). */
export function descendantsOf(pid: number): number[] {
  const out: number[] = [];
  const queue = childrenOf(pid);
  while (queue.length) {
    const p = queue.shift()!;
    out.push(p);
    queue.push(...childrenOf(p));
  }
  return out;
}

/**
 * Waits until the process has no children left, so the CPU of everything it started is in its
 * cutime/cstime (a child's CPU is added there only once it has been reaped). False on timeout.
 */
export async function waitForNoChildren(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (childrenOf(pid).length > 0) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

export interface RssTrace {
  baseline: number;
  /** Highest sampled VmRSS, raised to VmHWM when the high-water mark grew during the sampling. */
  peak: number;
  samples: number;
  /** Whether VmHWM grew (then `peak` is exact, not only as good as the sampling). */
  hwmGrew: boolean;
}

/**
 * Samples VmRSS of one process every `everyMs` until stopped. The baseline is VmRSS at the start;
 * the peak is the highest sample, or VmHWM when that rose meanwhile (it catches spikes between
 * samples). `tree` adds the RSS of all descendants at each sample (git processes of a push).
 */
export function sampleRss(pid: number, everyMs: number, opts: { tree?: boolean } = {}): { stop(): RssTrace } {
  const read = () => {
    let n = rssBytes(pid);
    if (opts.tree) {
      for (const d of descendantsOf(pid)) {
        try {
          n += rssBytes(d);
        } catch {
          // exited between listing and reading; kernel threads have no VmRSS
        }
      }
    }
    return n;
  };
  const hwmBefore = opts.tree ? 0 : hwmBytes(pid);
  const baseline = read();
  let peak = baseline;
  let samples = 1;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, read());
      samples++;
    } catch {
      // process gone: reported by the caller's own checks
    }
  }, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      try {
        peak = Math.max(peak, read());
        samples++;
      } catch {
        // gone
      }
      let hwmGrew = false;
      if (!opts.tree) {
        const hwmAfter = hwmBytes(pid);
        if (hwmAfter > hwmBefore) {
          hwmGrew = true;
          peak = Math.max(peak, hwmAfter);
        }
      }
      return { baseline, peak, samples, hwmGrew };
    },
  };
}
