import { createReadStream, promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { Transform, pipeline } from 'node:stream';
import { createGzip } from 'node:zlib';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Db } from '../core/db';
import { repoPath } from '../core/git';
import type { ObjectStore } from '../core/object-store';
import type { Redis } from '../core/redis';
import type { StepInput, StepResult } from '../core/run-types';
import { SandboxUnavailableError, type SandboxDriver } from './sandbox/sandbox-driver';
import { LogSink } from './log-sink';
import { artifactFiles, checkout, workspaceDir } from './workspace';

export interface SandboxActivityDeps {
  db: Db;
  redis: Redis;
  store: ObjectStore;
  driver: () => SandboxDriver;
  reposDir: string;
  workspacesDir: string;
  /** Used when a step sets no `timeout`. */
  defaultStepTimeoutMs: number;
}

/** Object key of a step's whole log (gzip). */
export function stepLogKey(runId: string, job: string, step: string): string {
  return `logs/${runId}/${job}/${encodeURIComponent(step)}.log.gz`;
}

export function artifactKey(runId: string, filePath: string): string {
  return `artifacts/${runId}/${filePath}`;
}

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

  return {
    async runStep(input: StepInput): Promise<StepResult> {
      const ctx = Context.current();
      const ws = workspaceDir(deps.workspacesDir, input.runId, input.job.name);
      const exists = await fs.stat(ws).then(() => true, () => false);
      if (!exists) await checkout(repoPath(deps.reposDir, input.tenant, input.repo), input.commit, ws);

      await db.query(
        `UPDATE steps SET status = 'running', started_at = coalesce(started_at, now()) WHERE tenant_id = $1 AND run_id = $2 AND job = $3 AND name = $4`,
        [input.tenantId, input.runId, input.job.name, input.step.name],
      );
      const logFile = `${ws}.${createHash('sha1').update(input.step.name).digest('hex').slice(0, 10)}.log`;
      const sink = new LogSink(redis, input.runId, input.job.name, input.step.name, logFile);
      const heartbeat = setInterval(() => ctx.heartbeat(), 5000);
      let result: StepResult;
      try {
        const env: Record<string, string> = {
          CI: 'true',
          ...input.step.env,
          DOTGIT_COMMIT: input.commit,
          DOTGIT_REF: input.ref,
          DOTGIT_REPO: `${input.tenant}/${input.repo}`,
          DOTGIT_RUN_ID: input.runId,
          DOTGIT_STEP_ATTEMPT: String(input.attempt),
        };
        if (input.attempt > 1) sink.line('stderr', `dotgit: attempt ${input.attempt}`);
        result = await sandboxDriver(deps).run({
          workspace: ws,
          command: input.step.run,
          env,
          timeoutMs: input.step.timeoutMs ?? deps.defaultStepTimeoutMs,
          network: input.job.network,
          onLine: (stream, line) => sink.line(stream, line),
          signal: ctx.cancellationSignal,
        });
        if (result.timedOut) sink.line('stderr', `dotgit: step timed out`);
        if (result.exitCode === 0 && input.artifacts.length > 0) {
          await uploadArtifacts(input, ws, (l) => sink.line('stderr', l));
        }
      } finally {
        clearInterval(heartbeat);
        await sink.close();
      }

      const logKey = stepLogKey(input.runId, input.job.name, input.step.name);
      await store.put(logKey, createReadStream(logFile).pipe(createGzip()));
      await fs.rm(logFile, { force: true });
      const status = result.cancelled ? 'cancelled' : result.exitCode === 0 ? 'success' : 'failure';
      await db.query(
        `UPDATE steps SET status = $5, exit_code = $6, log_key = $7, finished_at = now() WHERE tenant_id = $1 AND run_id = $2 AND job = $3 AND name = $4`,
        [input.tenantId, input.runId, input.job.name, input.step.name, status, result.exitCode, logKey],
      );
      return result;
    },

    async cleanupWorkspace(args: { runId: string; job: string }): Promise<void> {
      const ws = workspaceDir(deps.workspacesDir, args.runId, args.job);
      await fs.rm(ws, { recursive: true, force: true });
      await fs.rmdir(path.dirname(ws)).catch(() => undefined); // only when no other job of the run is left
    },
  };

  async function uploadArtifacts(input: StepInput, ws: string, note: (line: string) => void): Promise<void> {
    for (const entry of input.artifacts) {
      const files = await artifactFiles(ws, entry);
      if (files.length === 0) note(`dotgit: artifact ${entry} not found, skipped`);
      for (const file of files) {
        // Streamed: artifacts may be large; the hash is taken on the way to the store.
        const hash = createHash('sha256');
        const hashing = new Transform({
          transform(chunk: Buffer, _enc, done) {
            hash.update(chunk);
            done(null, chunk);
          },
        });
        const key = artifactKey(input.runId, file);
        const { size } = await store.put(key, pipeline(createReadStream(path.join(ws, file)), hashing, () => undefined));
        await db.query(
          `INSERT INTO artifacts (tenant_id, run_id, job, path, object_key, size, sha256) VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (tenant_id, run_id, path) DO UPDATE SET object_key = EXCLUDED.object_key, size = EXCLUDED.size, sha256 = EXCLUDED.sha256`,
          [input.tenantId, input.runId, input.job.name, file, key, size, hash.digest('hex')],
        );
        note(`dotgit: uploaded artifact ${file} (${size} bytes)`);
      }
    }
  }
}

export type SandboxActivities = ReturnType<typeof createSandboxActivities>;
