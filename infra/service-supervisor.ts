import { startChild, type ChildSpec, type ManagedChild } from './provision/child';
import type { ProvisionLog } from './provision/log';

/** Restart delays grow from 1 s to 30 s; a child that stayed up this long starts the count again. */
const MIN_DELAY_MS = 1000;
const MAX_DELAY_MS = 30_000;
const STABLE_AFTER_MS = 60_000;

/**
 * Keeps one service process running: when it exits without being asked to (a crash, an
 * out-of-memory kill), it is started again with exponential backoff, so one bad request cannot
 * take a service down for good.
 */
export class ServiceSupervisor {
  private child: ManagedChild | undefined;
  private stopping = false;
  private failures = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  /** How many times the service was restarted after an unexpected exit. */
  restarts = 0;
  /** Called after each start with the new process's pid (the runner rewrites its topology file). */
  onStarted: ((pid: number) => void) | undefined;

  constructor(
    private spec: ChildSpec,
    private readonly log: ProvisionLog,
  ) {}

  get pid(): number | undefined {
    return this.child?.isRunning() ? this.child.pid : undefined;
  }

  /** The environment the service (re)starts with. */
  get env(): NodeJS.ProcessEnv {
    return this.spec.env ?? process.env;
  }

  /** The environment of every later start, a restart after a crash included; the running process keeps its own. */
  setEnv(env: NodeJS.ProcessEnv): void {
    this.spec = { ...this.spec, env };
  }

  /** An orderly stop and a fresh start now (e.g. to take a new environment); not counted as a crash. */
  async restartNow(): Promise<void> {
    if (this.stopping) return;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const old = this.child;
    this.child = undefined; // its exit is expected: no crash restart for it
    await old?.stop();
    await this.start();
  }

  /** Starts the first time; rejects if the service does not become ready. */
  async start(): Promise<void> {
    const child = await startChild(this.spec);
    this.child = child;
    this.onStarted?.(child.pid);
    const startedAt = Date.now();
    void child.exited.then((exit) => {
      if (this.stopping || this.child !== child) return;
      if (Date.now() - startedAt > STABLE_AFTER_MS) this.failures = 0;
      const delay = Math.min(MIN_DELAY_MS * 2 ** this.failures, MAX_DELAY_MS);
      this.failures++;
      this.log.warn(`${this.spec.name} exited (code ${exit.code}, signal ${exit.signal}); restarting in ${delay} ms. Last lines:\n${child.logTail(15)}`);
      this.restartTimer = setTimeout(() => this.restartAfterCrash(), delay);
    });
  }

  private restartAfterCrash(): void {
    if (this.stopping) return;
    this.restarts++;
    this.start().catch((err) => {
      this.log.warn(`${this.spec.name} did not come back: ${(err as Error).message}`);
      if (!this.stopping) this.restartTimer = setTimeout(() => this.restartAfterCrash(), MAX_DELAY_MS);
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    await this.child?.stop();
  }
}
