import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { inTransaction, type Db } from './db';
import type { Logger } from './logger';
import { drainOutbox, isPermanentRefusal, type RowOutcome } from './outbox-drainer';
import type { PipelineInput } from './run-types';
import type { PipelineStartOutbox } from './stores/outbox-store';
import { failQueuedRun, lockQueuedRuns } from './stores/runs-store';
import { contextFrom, otelContext } from './tracing';
import { repoSearchAttributes, startWorkflow } from './workflow-starter';

/** Why a start row was stamped without starting: its run was cancelled (or removed) before the relay got to it. */
export const CANCELLED_BEFORE_START = 'cancelled before start';

/**
 * One relay pass over an outbox of pipeline starts (`push_outbox`, drained by the git-server;
 * `run_request_outbox`, drained by the api): starts a `pipeline` workflow for each pending row, by
 * its run id (REJECT_DUPLICATE: a start retried after a crash, or after the run ended, is a no-op).
 * The run row is locked while its workflow starts, and a run no longer queued (cancelled before its
 * start, `cancelUnstartedRun`) is not started. A permanent refusal fails the run (it could never
 * start); a transient one waits with backoff (Temporal down: rows wait). Started in the trace of
 * whatever wrote the row (its `traceparent`): the workflow continues it.
 */
export function drainPipelineStarts(db: Db, table: PipelineStartOutbox, temporal: () => Promise<Client>, log: Logger): Promise<number> {
  return drainOutbox(
    db,
    table,
    (row) => otelContext.with(contextFrom(row.traceparent as string | null), () => startPipeline(temporal, row.payload as PipelineInput)),
    {
      // The claimed rows' runs, locked until the rows are stamped; a run no longer queued is not started.
      decide: async (client, rows) => {
        const queued = await lockQueuedRuns(client, rows.map((r) => ({ tenantId: r.tenant_id, runId: String(r.run_id) })));
        return new Map(rows.filter((r) => !queued.has(String(r.run_id))).map((r) => [r, { permanent: true, message: CANCELLED_BEFORE_START }]));
      },
      onPermanent: async (client, row, message) => {
        if (message === CANCELLED_BEFORE_START) return;
        log.warn({ runId: row.run_id, outbox: table, err: message }, 'pipeline start refused; failing the run');
        await failQueuedRun(client, row.tenant_id, String(row.run_id), `the pipeline could not be started: ${message}`);
      },
    },
  );
}

/**
 * Starts the `pipeline` workflow of a run already recorded `queued`, without an outbox: for a caller
 * that itself runs inside Temporal and is retried by it (the scheduled-run activity), so a crash
 * between the run row's commit and the start is retried there instead of needing a relay. As a relay
 * does for a row: the run row is locked while the workflow starts (the pipeline's first activity and
 * a cancel wait for it), a run no longer queued is not started (`'not queued'`: cancelled, or
 * started by an earlier attempt), a permanent refusal fails the run; a transient one throws, for the
 * caller's retry.
 */
export function startQueuedPipeline(db: Db, temporal: () => Promise<Client>, input: PipelineInput): Promise<'started' | 'not queued' | 'refused'> {
  return inTransaction(db, async (c) => {
    if (!(await lockQueuedRuns(c, [{ tenantId: input.tenantId, runId: input.runId }])).has(input.runId)) return 'not queued';
    const outcome = await startPipeline(temporal, input);
    if (outcome === 'done') return 'started';
    if (!outcome.permanent) throw new Error(`could not start the pipeline of ${input.runId}: ${outcome.message}`);
    await failQueuedRun(c, input.tenantId, input.runId, `the pipeline could not be started: ${outcome.message}`);
    return 'refused';
  });
}

async function startPipeline(temporal: () => Promise<Client>, input: PipelineInput): Promise<RowOutcome> {
  try {
    await startWorkflow(await temporal(), 'pipeline', input.runId, [input], {
      // A run id is used once: a start retried after the run finished must not run it again.
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      typedSearchAttributes: repoSearchAttributes({ tenant: input.tenant, repo: input.repo, ref: input.ref, commit: input.commit }),
    });
    return 'done';
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return 'done';
    return { permanent: isPermanentRefusal(err), message: String((err as Error).message) };
  }
}
