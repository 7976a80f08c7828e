/**
 * Concurrency groups of pipelines (issue 17 item 4): the messages between a pipeline run and its
 * group's lock workflow, and the lock's workflow id. Workflow code imports this file: definitions
 * and pure functions only. Grant and release are the environment lock's own signals (ADR 0035).
 */
import { defineSignal } from '@temporalio/workflow';

export { lockGrantedSignal, releaseLockSignal } from './deploy-types';

/** A run's request to its group: queue me (`cancelInProgress`: and cancel every older run of the group). */
export interface GroupRequest {
  runId: string;
  /** A job-level group's request (ADR 0037): that job of the run queues, not the whole run. */
  job?: string;
  /** Epoch ms the run started: runs that arrive together are served in this order. */
  requestedAt: number;
  cancelInProgress: boolean;
}

/** Run → group lock: queue me. */
export const acquireGroupSignal = defineSignal<[GroupRequest]>('acquireGroup');
/** Group lock → waiting run: this many runs are ahead of you (the holder counts as one). */
export const groupPositionSignal = defineSignal<[number]>('groupPosition');

/** Group lock → run: its job `job` may start now (a job-level group; repeats are ignored). */
export const jobGroupGrantedSignal = defineSignal<[string]>('jobGroupGranted');
/** Group lock → run: its waiting job `job` has this many ahead of it. */
export const jobGroupPositionSignal = defineSignal<[string, number]>('jobGroupPosition');
/** Group lock → run: a newer job of the group with cancel-in-progress cancels its job `job`. */
export const cancelJobSignal = defineSignal<[string]>('cancelJobInGroup');

/** A group member's id in the lock's queue: the run's id, or the run's id and the job for a job-level group. */
export function groupMemberId(runId: string, job?: string): string {
  return job === undefined ? runId : `${runId}\u0000job:${job}`;
}

/** A run's pipeline-level concurrency, its group resolved (`${{ … }}` filled in when the file was loaded). */
export interface RunConcurrency {
  group: string;
  cancelInProgress: boolean;
}

/** Workflow id of a group's lock: one per repository and group, so the group's runs go one at a time. */
export function concurrencyGroupWorkflowId(tenant: string, repo: string, group: string): string {
  return `concurrency:${tenant}:${repo}:${group}`;
}

/** The run's status message while it waits (issue 17 item 8). */
export function groupWaitMessage(ahead: number, group: string): string {
  return `queued behind ${ahead} run${ahead === 1 ? '' : 's'} in concurrency group ${group}`;
}

/** A job's message while it waits in a job-level group (its group may hold runs and other runs' jobs). */
export function jobGroupWaitMessage(ahead: number, group: string): string {
  return `queued behind ${ahead} ${ahead === 1 ? 'holder' : 'holders'} in concurrency group ${group}`;
}
