/**
 * Picks the sandbox for this worker. `auto` prefers gVisor, falls back to bubblewrap, and refuses to
 * run steps unsandboxed unless `none` was chosen explicitly.
 *
 * Creation is synchronous (the worker builds its driver lazily, without awaiting); the self-test
 * that proves a runtime really works here runs once, on the first step, and is cached.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BwrapDriver } from './bwrap-driver';
import { locateBwrap, locateRunsc } from './locate';
import { NoneDriver } from './none-driver';
import { RunscDriver } from './runsc-driver';
import { SandboxUnavailableError, type SandboxDriver, type SandboxResult, type SandboxRunOptions } from './sandbox-driver';

export type SandboxKind = 'auto' | 'runsc' | 'bwrap' | 'none';

export interface SandboxLogger {
  warn(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
}

export interface CreateSandboxOptions {
  /** Private state directory (bundles, runsc state). */
  stateDir: string;
  logger?: SandboxLogger;
  /** Where provisioning put the pinned gVisor build (default `<repo>/.tools`). */
  toolsDir?: string;
  /** Overrides the runsc lookup entirely. */
  runscPath?: string;
  /** gVisor platform, default `ptrace`. */
  platform?: string;
}

/** Self-test outcomes per driver configuration: undefined = works, else the reason it does not. */
const selfTests = new Map<string, Promise<string | undefined>>();

async function selfTest(driver: SandboxDriver): Promise<string | undefined> {
  const workspace = await mkdtemp(path.join(os.tmpdir(), 'dotgit-sandbox-selftest-'));
  try {
    const lines: string[] = [];
    const result = await driver.run({
      workspace,
      command: 'echo sandbox-ok',
      env: {},
      timeoutMs: 20_000,
      onLine: (stream, line) => lines.push(`${stream}: ${line}`),
    });
    if (result.exitCode === 0 && lines.includes('stdout: sandbox-ok')) return undefined;
    return `exit ${result.exitCode}${result.timedOut ? ' (timed out)' : ''}: ${lines.slice(-5).join(' | ')}`;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    await rm(workspace, { recursive: true, force: true });
  }
}

function cachedSelfTest(key: string, driver: SandboxDriver): Promise<string | undefined> {
  let test = selfTests.get(key);
  if (!test) {
    test = selfTest(driver);
    selfTests.set(key, test);
  }
  return test;
}

interface Candidate {
  driver: SandboxDriver;
  key: string;
}

/**
 * Tries the candidates in order and settles on the first that passes its self-test. Until then
 * `name` is the preferred candidate's; `run` waits for the choice.
 */
class SelfTestingDriver implements SandboxDriver {
  private chosen: Promise<SandboxDriver> | undefined;
  private current: SandboxDriver;

  constructor(
    private readonly kind: SandboxKind,
    private readonly candidates: Candidate[],
    private readonly reasons: string[],
    private readonly logger?: SandboxLogger,
  ) {
    this.current = candidates[0]!.driver;
  }

  get name(): SandboxDriver['name'] {
    return this.current.name;
  }

  /** The self-tested driver; rejects with SandboxUnavailableError when none works. */
  resolve(): Promise<SandboxDriver> {
    this.chosen ??= this.choose();
    return this.chosen;
  }

  async run(options: SandboxRunOptions): Promise<SandboxResult> {
    return (await this.resolve()).run(options);
  }

  private async choose(): Promise<SandboxDriver> {
    const reasons = [...this.reasons];
    for (const { driver, key } of this.candidates) {
      const failure = await cachedSelfTest(key, driver);
      if (failure === undefined) {
        this.current = driver;
        if (reasons.length > 0) this.logger?.warn({ sandbox: driver.name, reasons }, `sandbox: falling back to ${driver.name}`);
        else this.logger?.info({ sandbox: driver.name }, `sandbox: ${driver.name}`);
        return driver;
      }
      reasons.push(`${driver.name} self-test failed: ${failure}`);
    }
    // Not cached as a rejection forever: a later step retries (maybe an admin fixed the host).
    this.chosen = undefined;
    for (const { key } of this.candidates) selfTests.delete(key);
    throw unavailable(this.kind, reasons);
  }
}

function unavailable(kind: SandboxKind, reasons: string[]): SandboxUnavailableError {
  return new SandboxUnavailableError(
    `no usable sandbox for DOTGIT_SANDBOX=${kind}: ${reasons.join('; ')}. ` +
      'Install gVisor (runsc) or bubblewrap (`npm start` provisions both as root), ' +
      'or set DOTGIT_SANDBOX=none for local development only (insecure).',
  );
}

/**
 * Returns the driver for `kind`. Throws SandboxUnavailableError at once when no runtime is even
 * installed; a runtime that is installed but broken is detected by the self-test on first use, and
 * `auto` then falls back (runsc -> bwrap) or the step fails with SandboxUnavailableError.
 */
export function createSandboxDriver(kind: SandboxKind, opts: CreateSandboxOptions): SandboxDriver {
  if (kind === 'none') {
    opts.logger?.warn(
      { sandbox: 'none' },
      'INSECURE: pipeline steps run WITHOUT a sandbox, as the worker user, with full access to this host and its network. Never use DOTGIT_SANDBOX=none outside local development.',
    );
    return new NoneDriver();
  }
  const candidates: Candidate[] = [];
  const reasons: string[] = [];
  if (kind === 'auto' || kind === 'runsc') {
    const runscPath = opts.runscPath ?? locateRunsc(opts.toolsDir);
    if (runscPath) {
      const driver = new RunscDriver({ stateDir: opts.stateDir, runscPath, platform: opts.platform });
      candidates.push({ driver, key: `runsc:${runscPath}:${opts.platform ?? ''}:${opts.stateDir}` });
    } else reasons.push('runsc: not installed');
  }
  if (kind === 'auto' || kind === 'bwrap') {
    const bwrapPath = locateBwrap();
    if (bwrapPath) {
      candidates.push({ driver: new BwrapDriver({ stateDir: opts.stateDir, bwrapPath }), key: `bwrap:${bwrapPath}:${opts.stateDir}` });
    } else reasons.push('bwrap: not installed');
  }
  if (candidates.length === 0) throw unavailable(kind, reasons);
  return new SelfTestingDriver(kind, candidates, reasons, opts.logger);
}

/** Like createSandboxDriver, but runs the self-test now and returns the concrete driver, for callers
 * that prefer to fail at startup rather than on the first step. */
export async function resolveSandboxDriver(kind: SandboxKind, opts: CreateSandboxOptions): Promise<SandboxDriver> {
  const driver = createSandboxDriver(kind, opts);
  return driver instanceof SelfTestingDriver ? driver.resolve() : driver;
}

/** For tests: forget cached self-test results. */
export function resetSandboxSelfTests(): void {
  selfTests.clear();
}
