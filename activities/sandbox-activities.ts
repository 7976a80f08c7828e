import { constants as fsConstants, createReadStream, promises as fs } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { Transform, pipeline } from 'node:stream';
import { createGzip } from 'node:zlib';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { ExponentialBackoff, handleAll, retry } from 'cockatiel';
import type { Db } from '../core/db';
import type { ShardRouter } from '../core/shard-router';
import type { ObjectStore } from '../core/object-store';
import type { Redis } from '../core/redis';
import { hostQueue, type StepInput, type StepResult } from '../core/run-types';
import type { SecretBox } from '../core/secret-box';
import { SecretMasker } from '../core/secret-mask';
import { IdTokenRefusedError, type IdTokenIssuer } from '../core/id-tokens';
import { appendRunEvent } from '../core/run-events';
import { publishPendingEvents } from '../core/pending-events';
import { findStepAttempt, markStepRunning, recordStepResult, upsertArtifact, type StepKey } from '../core/stores/runs-store';
import { findSecretValues } from '../core/stores/secrets-store';
import { SandboxUnavailableError, type SandboxDriver } from './sandbox/sandbox-driver';
import { appendLateLine, LogSink } from './log-sink';
import { ARTIFACTS_IN_SANDBOX, WORKSPACE_IN_SANDBOX } from './sandbox/mount-policy';
import { MAX_STEP_OUTPUT_BYTES, parseOutputFile } from '../core/pipeline-matrix';
import { holdSandboxPath } from './sandbox/orphans';
import { restoreCache, saveCache, type CacheScope, type JobCacheDeps } from './job-cache';
import type { HostJobs } from './sandbox/host-jobs';
import type { SourceCache } from './sandbox/source-cache';
import { artifactFiles, extractArchive, isMountPoint, mountTmpfs, unmountIfMounted, workspaceDir } from './workspace';
import { observeSandboxStart, observeStepFinished, observeStepStart } from './run-metrics';
import { withStartSignal } from './sandbox/start-signal';
import { currentTraceparent, inSpan } from '../core/tracing';

export interface SandboxActivityDeps {
  /** The one database when there is no router (tests of their own database). */
  db: Db;
  /** Routes each step's records to its tenant's shard database (ADR 0025). */
  router?: ShardRouter;
  redis: Redis;
  store: ObjectStore;
  driver: () => SandboxDriver;
  /** Where jobs' commits come from: archives fetched from a git-server, cached on this host (no repository disk here). */
  sources: SourceCache;
  workspacesDir: string;
  /** Used when a step sets no `timeout`. */
  defaultStepTimeoutMs: number;
  /** Size of each job's tmpfs workspace; 0 or unset keeps workspaces on disk (mounting needs root). */
  workspaceTmpfsBytes?: number;
  /** Opens pipeline secrets (core/pipeline-secrets.ts); without it, jobs naming secrets fail. */
  secretBox?: SecretBox;
  /** Mints id-tokens for jobs that ask (`id-token:`, issue 17); without it, such jobs fail. */
  idTokens?: IdTokenIssuer;
  /** The sandbox host id its steps report (run answers' `host`); default the machine's host name. */
  hostId?: string;
  /** The jobs in progress on this host (a draining worker serves its host queue until none are left). */
  jobs?: HostJobs;
  /**
   * Test hook (DOTGIT_TEST_STALL_BEFORE_STEP_RECORD): a file the first attempt of a step whose env
   * sets DOTGIT_TEST_STALL writes once its command has finished, then waits 120 s, so a test can kill
   * the worker in that window: `1` waits with the finished result written, `command-ended` as soon as
   * the sandbox is gone (only its exit record says the command ended). Unset in production.
   */
  stallBeforeRecord?: string;
  /** `DOTGIT_CACHE_REPO_MAX_MB` in bytes: a repository's pipeline caches beyond it lose their least recently used (issue 17). */
  cacheMaxRepoBytes?: number;
}

/** A finished command's result, kept beside its log until the step is recorded. */
interface FinishedCommand {
  result: StepResult;
  attempt: number;
  /** The workflow's attempt number of the call (StepInput.attempt): a `retry:` re-run is a new call. */
  call: number;
}

/** A step's row as the previous run of its activity left it. */
interface PreviousRun {
  status: string;
  attempt: number | null;
  host: string | null;
}

/**
 * The step's attempt number: the workflow's number for this call (counting `retry:` re-runs) plus
 * Temporal's re-runs of this activity (after a worker was lost), so numbers never repeat.
 */
export function stepAttempt(input: Pick<StepInput, 'attempt'>, activityAttempt: number): number {
  return input.attempt + activityAttempt - 1;
}

/** The line that opens a re-run's log, saying why it runs again; undefined for a first attempt. */
export function attemptNote(attempt: number, activityAttempt: number, previous: PreviousRun | undefined): string | undefined {
  if (activityAttempt > 1) {
    // Only this activity marks a step running, and a finished attempt records its end: a step still
    // `running` when Temporal runs the activity again lost its worker mid-command.
    if (previous?.status === 'running') return `dotgit: attempt ${attempt} after worker lost (attempt ${previous.attempt ?? attempt - 1} was running on ${previous.host ?? 'another worker'})`;
    return `dotgit: attempt ${attempt} (the previous attempt failed before its command ran)`;
  }
  return attempt > 1 ? `dotgit: attempt ${attempt}` : undefined;
}

/** Whether an activity's cancel came from its worker shutting down, not from the workflow. */
function isWorkerShutdown(reason: unknown): boolean {
  return reason instanceof Error && reason.message === 'WORKER_SHUTDOWN';
}

/** Written beside a tmpfs workspace once its checkout is whole (the mount point exists before that). */
function readyMarkerOf(ws: string): string {
  return `${ws}.ready`;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const exists = (p: string) => fs.stat(p).then(() => true, () => false);

/**
 * Where a step's finished command waits to be recorded. Written (synced, renamed into place) as soon
 * as the command ends: a worker killed before the step is recorded lets Temporal run the activity
 * again, and the re-run records this instead of running the command a second time (a deploy must
 * not ship twice).
 */
function finishedFileOf(logFile: string): string {
  return logFile.replace(/\.log$/, '.finished.json');
}

async function writeFinished(file: string, finished: FinishedCommand): Promise<void> {
  const tmp = `${file}.tmp`;
  const handle = await fs.open(tmp, 'w');
  try {
    await handle.writeFile(JSON.stringify(finished));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(tmp, file);
}

async function readFinished(file: string): Promise<FinishedCommand | undefined> {
  const text = await fs.readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as FinishedCommand;
  } catch {
    return undefined; // never whole (rename makes that unlikely): the command runs again
  }
}

/** Host directory of a job's /artifacts: beside its workspace, kept across its steps. */
function artifactsDirOf(ws: string): string {
  return `${ws}.artifacts`;
}

/** Object key of a step's whole log (gzip). */
export function stepLogKey(runId: string, job: string, step: string, runAttempt?: number): string {
  // Step names are free text (up to 100 characters of any script): hashed, they always make a valid file name.
  // A re-run's attempts (issue 17) keep their own logs: attempt 1 where runs always kept them.
  if (runAttempt && runAttempt > 1) return `logs/${runId}/attempt-${runAttempt}/${job}/${createHash('sha256').update(step).digest('hex').slice(0, 32)}.log.gz`;
  return `logs/${runId}/${job}/${createHash('sha256').update(step).digest('hex').slice(0, 32)}.log.gz`;
}

export function artifactKey(runId: string, job: string, filePath: string): string {
  return `artifacts/${runId}/${job}/${filePath}`;
}

/** The step's environment: the pipeline's own variables, then ours (which win). Nothing of the worker's. */
function stepEnv(input: StepInput, attempt: number, secrets: Record<string, string>): Record<string, string> {
  return {
    CI: 'true',
    ...input.step.env,
    ...secrets,
    DOTGIT_COMMIT: input.commit,
    DOTGIT_REF: input.ref,
    DOTGIT_REPO: `${input.tenant}/${input.repo}`,
    DOTGIT_RUN_ID: input.runId,
    DOTGIT_STEP_ATTEMPT: String(attempt),
    DOTGIT_ARTIFACTS: ARTIFACTS_IN_SANDBOX,
  };
}

/**
 * The step's `$DOTGIT_OUTPUT` file, in the workspace (the one place both the sandbox and this host
 * write): hidden, named after the step, created empty before it runs and removed once read.
 */
function outputFileName(step: string): string {
  return `.dotgit-output-${createHash('sha256').update(step).digest('hex').slice(0, 16)}`;
}

/**
 * The step's exit record (ADR 0046), in the workspace: the sandbox writes `<tag> <status>` there the
 * moment the command ends, so a worker lost before it heard the status does not run the command again.
 */
function exitRecordOf(input: StepInput): { file: string; tag: string } {
  return {
    file: `.dotgit-exit-${createHash('sha256').update(input.step.name).digest('hex').slice(0, 16)}`,
    // One call of the step (a `retry:` re-run or a run's re-run is another): a stale record never matches.
    tag: `${input.runId}:${input.runAttempt ?? 1}:${input.attempt}`,
  };
}

/**
 * The exit status an earlier attempt's sandbox recorded for this call, if it did. Read like the
 * output file: the step controls the workspace and could leave a link or a FIFO there.
 */
async function readExitRecord(file: string, tag: string): Promise<number | undefined> {
  const read = await readWorkspaceFile(file, 256);
  const match = typeof read === 'string' ? /^(\S+) (\d{1,3})\n$/.exec(read) : null;
  return match && match[1] === tag ? Number(match[2]) : undefined;
}

/**
 * A small file the step left in its workspace, opened without following links and read only when
 * a regular file of at most `maxBytes`: the step controls the workspace and could leave a symlink
 * to a host file or a FIFO in its place. Undefined when absent (or a link).
 */
async function readWorkspaceFile(file: string, maxBytes: number): Promise<string | { notRegular: true } | { tooLarge: number } | undefined> {
  let handle;
  try {
    handle = await fs.open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) return { notRegular: true };
    if (st.size > maxBytes) return { tooLarge: st.size };
    const buffer = Buffer.alloc(st.size);
    const { bytesRead } = await handle.read(buffer, 0, st.size, 0);
    return buffer.subarray(0, bytesRead).toString('utf8');
  } finally {
    await handle.close();
  }
}

/** What the step wrote to its output file, masked like its log; notes for the log about what was ignored. */
async function readStepOutputs(file: string, masker: SecretMasker): Promise<{ outputs?: Record<string, string>; notes: string[] }> {
  const read = await readWorkspaceFile(file, MAX_STEP_OUTPUT_BYTES);
  if (read === undefined) return { notes: [] }; // removed (or replaced by a link) by the step: no outputs
  if (typeof read !== 'string') {
    const why = 'notRegular' in read ? 'is not a regular file' : `holds ${read.tooLarge} bytes, more than ${MAX_STEP_OUTPUT_BYTES}`;
    return { notes: [`dotgit: $DOTGIT_OUTPUT ${why}; its outputs are ignored`] };
  }
  const { outputs, problems } = parseOutputFile(read);
  const masked = Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, masker.mask(v)]));
  return { outputs: Object.keys(masked).length > 0 ? masked : undefined, notes: problems.map((p) => `dotgit: $DOTGIT_OUTPUT ${p}`) };
}

/** `TRACEPARENT` of the active span (the step's), when tracing. */
function traceEnv(): Record<string, string> {
  const traceparent = currentTraceparent();
  return traceparent ? { TRACEPARENT: traceparent } : {};
}

/**
 * Recording a finished step's results (artifacts, log, row) is retried for about 80 s (11 tries,
 * 0.5 s doubling to 10 s apart) while the step heartbeats: long enough for Postgres or the object
 * store to restart, short of the heartbeat-free window that would look like a lost worker.
 */
const RECORDING_RETRY = retry(handleAll, { maxAttempts: 10, backoff: new ExponentialBackoff({ initialDelay: 500, maxDelay: 10_000 }) });

/** The driver, or a non-retryable failure: a missing sandbox will not appear by retrying. */
function sandboxDriver(deps: SandboxActivityDeps): SandboxDriver {
  try {
    return deps.driver();
  } catch (err) {
    if (err instanceof SandboxUnavailableError) throw ApplicationFailure.nonRetryable(err.message, 'SandboxUnavailable');
    throw err;
  }
}

/** Activities of the sandbox task queue: run one step in a sandbox, clean a job's workspace. */
export function createSandboxActivities(deps: SandboxActivityDeps) {
  const { db, redis, store } = deps;
  // A run's rows live in its tenant's shard (ADR 0025).
  const dbOf = (tenantId: number) => deps.router?.forTenant(tenantId) ?? db;
  const host = deps.hostId ?? os.hostname();
  const ownQueue = hostQueue(host);
  let tmpfsUnavailable = false;
  // Job caches are staged on the host's disk beside the workspaces (never in a job's tmpfs).
  const caches: JobCacheDeps = { dbOf, store, maxRepoBytes: deps.cacheMaxRepoBytes ?? 1024 * 1024 * 1024, tmpDir: path.join(path.dirname(deps.workspacesDir), 'cache-staging') };
  const cacheScope = (input: StepInput): CacheScope => ({ tenantId: input.tenantId, repo: input.repo, ref: input.ref, runId: input.runId, job: input.job.name });

  return {
    async runStep(input: StepInput): Promise<StepResult> {
      const ctx = Context.current();
      const begun = performance.now(); // the sandbox's start time is measured from here
      let attempt = stepAttempt(input, ctx.info.attempt);
      // Heartbeat from the start until the activity returns: a long checkout or log upload must not
      // look like a dead worker (Temporal would run the step a second time).
      ctx.heartbeat();
      const heartbeat = setInterval(() => ctx.heartbeat(), 1000);
      const ws = workspaceDir(deps.workspacesDir, input.runId, input.job.name);
      // Orphan pruning keeps workspaces in use here, and judges the others by when a step last began.
      const release = holdSandboxPath(ws);
      let counted = false;
      let answered = false;
      try {
        const driver = sandboxDriver(deps);
        if (input.pinned && !(await workspaceReady(ws))) {
          // A later step must find what the earlier ones left; a fresh checkout here would run it without.
          throw ApplicationFailure.nonRetryable("the job's workspace is gone from this host", 'WorkspaceLost');
        }
        await prepareWorkspace(input, ws);
        // From its first step to its clean-up, a job pinned to this host holds a place here.
        if (input.pinsHost || input.pinned) {
          deps.jobs?.stepStarted(ws, !input.pinned);
          counted = true;
        }
        const now = new Date();
        await fs.utimes(ws, now, now);
        await fs.mkdir(artifactsDirOf(ws), { recursive: true });
        await fs.chmod(artifactsDirOf(ws), 0o777); // the step's unprivileged user writes here
        const logFile = `${ws}.${createHash('sha256').update(input.step.name).digest('hex').slice(0, 16)}.log`;
        const finishedFile = finishedFileOf(logFile);
        const exitRecord = exitRecordOf(input);
        const exitFile = path.join(ws, exitRecord.file);
        const outputFile = path.join(ws, outputFileName(input.step.name));
        // The files the command leaves for its recording; kept until its result is written down.
        const removeCommandFiles = () => Promise.all([fs.rm(outputFile, { force: true }), fs.rm(exitFile, { force: true })]);
        const earlier = ctx.info.attempt > 1 ? await readFinished(finishedFile) : undefined;
        if (earlier?.call === input.attempt) {
          // The command ran to its end under an earlier attempt whose worker was lost before answering.
          // Its log is removed only once the step is recorded: without it, only the answer was lost.
          if (!(await exists(logFile))) {
            answered = true;
            return earlier.result;
          }
          const note = `dotgit: attempt ${earlier.attempt} finished its command before its worker was lost; its result is recorded now, the command is not run again\n`;
          const finished = await recordRan(input, ws, logFile, earlier.result, async () => {
            await appendFile(logFile, note);
            await removeCommandFiles(); // when the worker was lost just after writing the finished result
          });
          answered = true;
          return finished;
        }
        const previous = ctx.info.attempt > 1 || input.restartNote ? await previousRun(input) : undefined;
        const ended = ctx.info.attempt > 1 ? await readExitRecord(exitFile, exitRecord.tag) : undefined;
        if (ended !== undefined) {
          // The sandbox recorded the command's end, then the worker was lost before it recorded the
          // step: the result is what the sandbox said, the command is not run again.
          const finished = await recordEnded(input, ws, { logFile, finishedFile, outputFile }, ended, previous?.attempt ?? attempt - 1, removeCommandFiles);
          answered = true;
          return finished;
        }
        // A job restarted after its host was lost: its steps count on from what they ran as there.
        if (input.restartNote && previous?.attempt) attempt = Math.max(attempt, previous.attempt + 1);
        const sincePush = await markStepRunning(dbOf(input.tenantId), stepKeyOf(input), attempt, host);
        // A job's first step, first try: how long the push waited for its work to begin.
        if (!input.pinned && ctx.info.attempt === 1 && !input.restartNote) observeStepStart(sincePush);
        await appendRunEvent(redis, input.runId, { event: 'step', job: input.job.name, step: input.step.name, status: 'running', attempt });
        // A run's job's first step (from the shared queue): the job no longer waits for a host (ADR 0044; deploys have no such events).
        if (!input.pinned && !input.job.environment) await publishPendingEvents(dbOf(input.tenantId), redis, input.tenantId, input.runId);
        const { values: secrets, missing } = await loadSecrets(input);
        // Issue 17 item 7: a job that asked gets its id-token, masked in its log like a secret.
        const { token: idToken, refused } = await mintIdToken(input);
        const masker = new SecretMasker([...Object.values(secrets), ...(idToken ? [idToken] : [])]);
        // The sandbox masks its output before cutting long lines (a secret across a cut stays whole);
        // dotgit's own notes never hold secret values.
        const sink = new LogSink(redis, input.runId, input.job.name, input.step.name, logFile, attempt);
        let result: StepResult;
        // Issue 17: the step's `key=value` outputs; writable by the step's unprivileged user.
        await removeCommandFiles();
        await fs.writeFile(outputFile, '', { mode: 0o666 });
        await fs.chmod(outputFile, 0o666);
        try {
          if (input.restartNote) sink.line('stderr', `dotgit: ${input.restartNote}; the job runs again from a fresh checkout on host ${host}`);
          const note = input.restartNote ? undefined : attemptNote(attempt, ctx.info.attempt, previous);
          if (note) sink.line('stderr', note);
          for (const name of missing) sink.line('stderr', `dotgit: secret ${name} is not set for this repository; the variable is empty`);
          // Issue 17: the job's cache, before its first step (the key is computed over the checkout).
          const restored = input.cache?.restore ? await restoreCache(caches, cacheScope(input), input.cache.spec, ws, (l) => sink.line('stderr', l)) : undefined;
          // The step is a span of the run's trace; TRACEPARENT lets the user's own tools continue it.
          // A refused id-token fails the step with the reason in its log, without running its command.
          if (refused) sink.line('stderr', `dotgit: ${refused}; the step does not run`);
          result = refused ? { exitCode: 1, timedOut: false, cancelled: false } : await inSpan('sandbox step', { 'dotgit.job': input.job.name, 'dotgit.step': input.step.name, 'dotgit.host': host }, () => driver.run(withStartSignal({
            workspace: ws,
            artifacts: artifactsDirOf(ws),
            command: input.step.run,
            env: { ...stepEnv(input, attempt, secrets), ...(idToken ? { DOTGIT_ID_TOKEN: idToken } : {}), DOTGIT_OUTPUT: `${WORKSPACE_IN_SANDBOX}/${path.basename(outputFile)}`, ...traceEnv() },
            timeoutMs: input.step.timeoutMs ?? deps.defaultStepTimeoutMs,
            network: input.job.network,
            workspaceBytes: deps.workspaceTmpfsBytes && !tmpfsUnavailable ? deps.workspaceTmpfsBytes : 0,
            mask: masker,
            onLine: (stream, line) => sink.line(stream, line),
            signal: ctx.cancellationSignal,
            exitRecord,
          }, () => observeSandboxStart(driver.name, (performance.now() - begun) / 1000))));
          await stallForTest(input, ctx.info.attempt, 'command-ended');
          const { outputs, notes } = await readStepOutputs(outputFile, masker);
          for (const note of notes) sink.line('stderr', note);
          if (outputs) result = { ...result, outputs };
          if (restored) result = { ...result, cache: restored };
        } finally {
          // On a failure the command files stay: an exit record here means the command ended, and
          // Temporal's retry records it instead of running the command again (the next call clears them).
          await sink.close();
        }
        if (result.cancelled && isWorkerShutdown(ctx.cancellationSignal.reason)) {
          // Not the run's cancel: this host stopped (drain period over). Failing retryably sends the
          // step, and with a pinned job the whole job, to another host.
          await Promise.all([fs.rm(logFile, { force: true }), removeCommandFiles()]);
          throw ApplicationFailure.retryable('the host stopped before the step finished (drain period over)', 'HostStopped');
        }
        // From here on the user's command has run: a failure must not make Temporal run it again.
        const ran: StepResult = { ...result, attempt, host, hostQueue: ownQueue };
        const finished = await recordRan(input, ws, logFile, ran, async () => {
          await writeFinished(finishedFile, { result: ran, attempt, call: input.attempt });
          await removeCommandFiles();
          await stallForTest(input, ctx.info.attempt, 'finished-written');
        });
        answered = true;
        return finished;
      } finally {
        clearInterval(heartbeat);
        release();
        // A first step that answers no result pins nothing here: its job goes on elsewhere, if at all.
        if (counted) deps.jobs?.stepEnded(ws, !input.pinned, answered || Boolean(input.pinned));
      }
    },

    async cleanupWorkspace(args: { runId: string; job: string }): Promise<void> {
      const ws = workspaceDir(deps.workspacesDir, args.runId, args.job);
      deps.jobs?.ended(ws);
      await unmountIfMounted(ws);
      await fs.rm(ws, { recursive: true, force: true });
      await fs.rm(readyMarkerOf(ws), { force: true });
      await fs.rm(artifactsDirOf(ws), { recursive: true, force: true });
      // Logs and finished results a lost worker left beside the workspace (a recorded step removes its own).
      const leftover = new RegExp(`^${escapeRegExp(path.basename(ws))}\\.[0-9a-f]{16}\\.(log|finished\\.json)$`);
      for (const entry of await fs.readdir(path.dirname(ws)).catch(() => [] as string[])) {
        if (leftover.test(entry)) await fs.rm(path.join(path.dirname(ws), entry), { force: true });
      }
      await fs.rmdir(path.dirname(ws)).catch(() => undefined); // only when no other job of the run is left
    },
  };

  /**
   * Records a step whose command has run (after `first`), then removes its log. A failure is final:
   * Temporal must not run the command again. The finished file stays until the job's clean-up, so a
   * worker lost after this but before Temporal heard the answer does not run it again either.
   */
  async function recordRan(input: StepInput, ws: string, logFile: string, ran: StepResult, first: () => Promise<void>): Promise<StepResult> {
    try {
      await first();
      return await finishStep(input, ws, logFile, ran);
    } catch (err) {
      throw ApplicationFailure.nonRetryable(`recording the step's results failed: ${(err as Error).message}`, 'StepFinishFailed');
    } finally {
      await fs.rm(logFile, { force: true });
    }
  }

  /**
   * Records a step whose command ended under an earlier attempt that lost its worker before writing
   * the finished result: its exit status from the sandbox's exit record, its outputs from the file
   * the command left, and a line in its log saying so.
   */
  async function recordEnded(
    input: StepInput,
    ws: string,
    files: { logFile: string; finishedFile: string; outputFile: string },
    exitCode: number,
    attempt: number,
    removeCommandFiles: () => Promise<unknown>,
  ): Promise<StepResult> {
    const { values: secrets } = await loadSecrets(input);
    const { outputs, notes } = await readStepOutputs(files.outputFile, new SecretMasker(Object.values(secrets)));
    const ran: StepResult = { exitCode, timedOut: false, cancelled: false, attempt, host, hostQueue: ownQueue, ...(outputs ? { outputs } : {}) };
    const lines = [
      ...notes,
      `dotgit: attempt ${attempt}'s command ended (exit ${exitCode}) before its worker was lost; its result is recorded now, the command is not run again (lines it printed last may be missing above)`,
    ];
    return recordRan(input, ws, files.logFile, ran, async () => {
      await appendFile(files.logFile, lines.map((l) => `${l}\n`).join(''));
      await writeFinished(files.finishedFile, { result: ran, attempt, call: input.attempt });
      await removeCommandFiles();
    });
  }

  /** The test hook's pause between a command's end and its recording (see `stallBeforeRecord`). */
  async function stallForTest(input: StepInput, activityAttempt: number, point: 'command-ended' | 'finished-written'): Promise<void> {
    const asked = input.step.env?.DOTGIT_TEST_STALL;
    if (!deps.stallBeforeRecord || activityAttempt > 1 || (asked === '1' ? 'finished-written' : asked) !== point) return;
    await fs.writeFile(deps.stallBeforeRecord, `${input.runId}\n`);
    await new Promise((resolve) => setTimeout(resolve, 120_000));
  }

  /** Whether the job's workspace is here and whole (a tmpfs one has its marker). */
  async function workspaceReady(ws: string): Promise<boolean> {
    return (await exists(readyMarkerOf(ws))) || ((await exists(ws)) && !(await isMountPoint(ws)));
  }

  /** The step's row before this attempt marks it running. */
  async function previousRun(input: StepInput): Promise<PreviousRun | undefined> {
    return (await findStepAttempt(dbOf(input.tenantId), stepKeyOf(input))) as PreviousRun | undefined;
  }

  /** The id-token of a job that asked for one (`input.job.idToken`), or why it is refused; nothing for every other job. */
  async function mintIdToken(input: StepInput): Promise<{ token?: string; refused?: string }> {
    const asked = input.job.idToken;
    if (!asked) return {};
    if (!deps.idTokens) throw ApplicationFailure.nonRetryable('this worker cannot sign id-tokens', 'IdTokenUnavailable');
    try {
      const token = await deps.idTokens.mint({
        tenant: input.tenant,
        repo: input.repo,
        ref: input.ref,
        commit: input.commit,
        runId: input.runId,
        job: input.job.name,
        actor: asked.actor,
        event: asked.event,
        environment: input.job.environment,
        audience: asked.audience,
      });
      return { token };
    } catch (err) {
      if (err instanceof IdTokenRefusedError) return { refused: err.message };
      throw err;
    }
  }

  /** The secrets the job names, opened; an environment's own value wins over the repository-wide one. */
  async function loadSecrets(input: StepInput): Promise<{ values: Record<string, string>; missing: string[] }> {
    const names = input.job.secrets ?? [];
    if (names.length === 0) return { values: {}, missing: [] };
    const box = deps.secretBox;
    if (!box) throw ApplicationFailure.nonRetryable('this worker has no key to open secrets', 'SecretsUnavailable');
    const rows = await findSecretValues(dbOf(input.tenantId), input.tenantId, input.repo, names, input.job.environment ?? '');
    const values: Record<string, string> = {};
    for (const row of rows) values[row.name] = box.open(row.value_enc); // '' sorts first, so the environment's value overwrites
    return { values, missing: names.filter((n) => !(n in values)) };
  }

  /** The commit's files into `dir`, from the host's source cache. */
  function checkout(input: StepInput, dir: string): Promise<void> {
    return deps.sources.use({ repo: `${input.tenant}/${input.repo}`, commit: input.commit }, (tarFile) => extractArchive(tarFile, dir));
  }

  /** The job's workspace: checked out once (into a temporary folder renamed into place, so a half-made checkout is never reused). */
  async function prepareWorkspace(input: StepInput, ws: string): Promise<void> {
    if (deps.workspaceTmpfsBytes && !tmpfsUnavailable) {
      if (await exists(readyMarkerOf(ws))) return;
      try {
        await mountTmpfs(ws, deps.workspaceTmpfsBytes);
      } catch (err) {
        // No mount rights here (e.g. a container without CAP_SYS_ADMIN): disk workspaces from now on.
        tmpfsUnavailable = true;
        await fs.rmdir(ws).catch(() => undefined);
        console.warn(`dotgit: tmpfs workspaces unavailable, using disk: ${(err as Error).message}`);
        return prepareWorkspace(input, ws);
      }
      try {
        // A checkout a killed worker left half-made is cleared first; the marker says it is whole.
        for (const entry of await fs.readdir(ws)) await fs.rm(path.join(ws, entry), { recursive: true, force: true });
        await checkout(input, ws);
        await fs.writeFile(readyMarkerOf(ws), '');
      } catch (err) {
        throw ApplicationFailure.retryable(`checkout of ${input.commit.slice(0, 12)} failed`, 'CheckoutFailed', (err as Error).message);
      }
      return;
    }
    if (await exists(ws)) return;
    const tmp = `${ws}.checkout-${randomBytes(4).toString('hex')}`;
    try {
      await checkout(input, tmp);
      await fs.rename(tmp, ws);
    } catch (err) {
      await fs.rm(tmp, { recursive: true, force: true });
      if (await exists(ws)) return; // another attempt won the race
      throw ApplicationFailure.retryable(`checkout of ${input.commit.slice(0, 12)} failed`, 'CheckoutFailed', (err as Error).message);
    }
  }

  async function finishStep(input: StepInput, ws: string, logFile: string, result: StepResult): Promise<StepResult> {
    const note = (line: string) => appendLateLine(redis, { runId: input.runId, job: input.job.name, step: input.step.name, attempt: result.attempt ?? 1, logFile }, line);
    if (result.timedOut) {
      const limit = (input.step.timeoutMs ?? deps.defaultStepTimeoutMs) / 1000;
      await note(`dotgit: step timed out after ${limit}s; a timed-out step fails whatever its command exits with (exit ${result.exitCode})`);
    }
    const logKey = stepLogKey(input.runId, input.job.name, input.step.name, input.runAttempt);
    const status = result.cancelled ? 'cancelled' : result.exitCode === 0 && !result.timedOut ? 'success' : 'failure';
    // Issue 17: the job succeeded (this is its last step): its cache is saved unless its key was found.
    const saveKey = input.cache?.key ?? result.cache?.key;
    if (status === 'success' && input.cache?.save && saveKey !== undefined && !result.cache?.hit) {
      const lines: string[] = [];
      await saveCache(caches, cacheScope(input), input.cache.spec, saveKey, ws, (l) => lines.push(l));
      for (const l of lines) await note(l);
    }
    let seconds: number | null | undefined;
    // Every part below is safe to repeat; a Postgres or object-store restart while the step ends
    // must not fail a step whose command succeeded (the command itself is never run again).
    await RECORDING_RETRY.execute(async () => {
      if (status === 'success' && (input.artifacts.length > 0 || input.lastStep)) await uploadArtifacts(input, ws, note);
      await store.put(logKey, createReadStream(logFile).pipe(createGzip()));
      seconds = await recordStepResult(dbOf(input.tenantId), stepKeyOf(input), status, result.exitCode, logKey);
    });
    observeStepFinished(status, seconds);
    // The live stream only: the row above is the record, so a Redis outage costs the event, not the step.
    await appendRunEvent(redis, input.runId, { event: 'step', job: input.job.name, step: input.step.name, status, exitCode: result.exitCode, attempt: result.attempt }).catch(
      () => undefined,
    );
    // The job's last step ended: the jobs that need it wait for something else now (ADR 0044).
    if (input.lastStep && !input.job.environment) await publishPendingEvents(dbOf(input.tenantId), redis, input.tenantId, input.runId);
    return result;
  }

  async function uploadArtifacts(input: StepInput, ws: string, note: (line: string) => Promise<void>): Promise<void> {
    // Declared paths from the workspace, then whatever the job put in /artifacts (same path: the latter wins).
    const sources: { root: string; entry: string; declared: boolean }[] = input.artifacts.map((entry) => ({ root: ws, entry, declared: true }));
    if (input.lastStep) sources.push({ root: artifactsDirOf(ws), entry: '.', declared: false });
    for (const { root, entry, declared } of sources) {
      const files = await artifactFiles(root, entry);
      if (files.length === 0 && declared) await note(`dotgit: artifact ${entry} not found, skipped`);
      for (const file of files) {
        // Streamed: artifacts may be large; the hash is taken on the way to the store.
        const hash = createHash('sha256');
        const hashing = new Transform({
          transform(chunk: Buffer, _enc, done) {
            hash.update(chunk);
            done(null, chunk);
          },
        });
        const key = artifactKey(input.runId, input.job.name, file);
        const { size } = await store.put(key, pipeline(createReadStream(path.join(root, file)), hashing, () => undefined));
        await upsertArtifact(dbOf(input.tenantId), { tenantId: input.tenantId, runId: input.runId, job: input.job.name, path: file, objectKey: key, size, sha256: hash.digest('hex') });
        await note(`dotgit: uploaded artifact ${file} (${size} bytes)`);
      }
    }
  }
}

export type SandboxActivities = ReturnType<typeof createSandboxActivities>;

/** The step row a sandbox step records into. */
function stepKeyOf(input: StepInput): StepKey {
  return { tenantId: input.tenantId, runId: input.runId, job: input.job.name, step: input.step.name };
}
