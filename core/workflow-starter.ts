import type { Client, WorkflowSignalWithStartOptions, WorkflowStartOptions } from '@temporalio/client';
import type { SearchAttributePair } from '@temporalio/common';
// Types only: the workflow functions' signatures type the starts; no workflow code is loaded here.
import type * as Workflows from '../workflows';
import { ORCHESTRATION_QUEUE } from './run-types';
import { SEARCH_ATTRIBUTES } from './search-attributes';

/**
 * The one way workflows are started (issue 15 item 3): by the name the worker registers them under
 * (workflows/index.ts), with arguments type-checked against the workflow function itself, on the
 * orchestration queue. Callers keep their workflow ids (run and deploy ids, `replicationWorkflowId`,
 * `maintenanceWorkflowId`, `moveWorkflowId`, backup and restore ids): recorded histories and running
 * workflows depend on them, so this module changes neither ids nor arguments, only how they are
 * typed. `repoSearchAttributes` gives runs and deploys the same Temporal UI filters (README).
 */

/** A workflow the worker registers. */
export type WorkflowName = keyof typeof Workflows;

/** The arguments `name` takes, from the workflow function's own signature. */
export type WorkflowArgs<W extends WorkflowName> = Parameters<(typeof Workflows)[W]>;

/** Start options besides what this module sets (workflow id, arguments; the queue unless given). */
export type StartOptions = Omit<WorkflowStartOptions, 'workflowId' | 'args' | 'taskQueue'> & { taskQueue?: string };

/** Starts `name` as `workflowId` with typed `args`; Temporal's errors (already started, unavailable) are the caller's. */
export async function startWorkflow<W extends WorkflowName>(client: Client, name: W, workflowId: string, args: WorkflowArgs<W>, options: StartOptions = {}): Promise<void> {
  await client.workflow.start<(typeof Workflows)[W]>(name, { taskQueue: ORCHESTRATION_QUEUE, ...options, workflowId, args } as WorkflowStartOptions<(typeof Workflows)[W]>);
}

/** Signals `name`'s workflow `workflowId`, starting it with typed `args` when it is not running. */
export async function signalWithStartWorkflow<W extends WorkflowName>(
  client: Client,
  name: W,
  workflowId: string,
  args: WorkflowArgs<W>,
  signal: { name: string; args: unknown[] },
): Promise<void> {
  await client.workflow.signalWithStart(name, {
    taskQueue: ORCHESTRATION_QUEUE,
    workflowId,
    args,
    signal: signal.name,
    signalArgs: signal.args,
  } as unknown as WorkflowSignalWithStartOptions);
}

/**
 * The action of a Temporal Schedule that starts `name` with typed `args` on the orchestration queue
 * (the platform's schedules and pipelines' `on.schedule` crons): schedules start workflows by name
 * too, so they are typed here like every other start. `workflowId` is the id each firing's workflow
 * id is derived from (Temporal appends the firing time); default the schedule's id.
 */
export function scheduledStart<W extends WorkflowName>(name: W, args: WorkflowArgs<W>, workflowId?: string) {
  return { type: 'startWorkflow' as const, workflowType: name, taskQueue: ORCHESTRATION_QUEUE, args, ...(workflowId === undefined ? {} : { workflowId }) };
}

/** The search attributes of a run or deploy: tenant, "tenant/repo", ref, commit (and environment, status for deploys). */
export function repoSearchAttributes(w: { tenant: string; repo: string; ref: string; commit: string; environment?: string; status?: string }): SearchAttributePair[] {
  const pairs: SearchAttributePair[] = [
    { key: SEARCH_ATTRIBUTES.tenant, value: w.tenant },
    { key: SEARCH_ATTRIBUTES.repo, value: `${w.tenant}/${w.repo}` },
    { key: SEARCH_ATTRIBUTES.ref, value: w.ref },
    { key: SEARCH_ATTRIBUTES.commit, value: w.commit },
  ];
  if (w.environment !== undefined) pairs.push({ key: SEARCH_ATTRIBUTES.environment, value: w.environment });
  if (w.status !== undefined) pairs.push({ key: SEARCH_ATTRIBUTES.status, value: w.status });
  return pairs;
}
