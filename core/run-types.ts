/**
 * Types shared by the pipeline workflow, its activities and the services that start it. Pure types
 * and constants only: workflow code imports this file, so it must stay free of I/O.
 */
import type { JobSpec, PipelineSpec } from './pipeline-spec';
import type { CacheSpec } from './pipeline-cache';

/** Orchestration task queue: workflows and light activities (records, parsing). */
export const ORCHESTRATION_QUEUE = 'dotgit-orchestration';
/** Sandbox task queue: step activities, on hosts that can run gVisor. */
export const SANDBOX_QUEUE = 'dotgit-sandbox';

/**
 * A sandbox host's own task queue (Temporal's worker-specific task queue pattern): a job's later
 * steps go here, to the host that holds the job's workspace. Every sandbox worker polls its own.
 */
export function hostQueue(hostId: string): string {
  return `${SANDBOX_QUEUE}@${hostId}`;
}

/**
 * A storage node's own task queue (ADR 0014): activities that need a repository's disk (repack,
 * replica sync) run on the worker beside the node that holds it, which polls this queue.
 */
export function storageQueue(nodeId: string): string {
  return `dotgit-storage@${nodeId}`;
}

export type RunStatus = 'queued' | 'running' | 'success' | 'failure' | 'cancelled';
export type StepStatus = RunStatus | 'skipped';

export interface PipelineInput {
  runId: string;
  tenantId: number;
  tenant: string;
  repoId: number;
  repo: string;
  ref: string;
  commit: string;
  /** What started the run (issue 17; absent in runs queued before: a push). */
  event?: 'push' | 'manual' | 'schedule';
  /** Who started it: the pusher, or the user who started it by hand (absent before issue 17). */
  actor?: string;
  /** A hand-started run's input values, checked by the api (on.manual.inputs); others get the defaults. */
  inputs?: Record<string, string>;
  /**
   * Issue 17 item 5: a re-run is attempt 2, 3 … of the same run id (absent: 1). The api has reset
   * the steps of the jobs to run again; jobs whose steps all succeeded are reused, not run.
   */
  attempt?: number;
}

export type LoadPipelineResult = ({ ok: true; spec: PipelineSpec } | { ok: false; message: string }) & {
  /** Whether the repository has a webhook for `workflow_run` (absent before issue 11: assume yes). */
  workflowRunHooks?: boolean;
};

export interface StepInput {
  runId: string;
  tenantId: number;
  tenant: string;
  repo: string;
  ref: string;
  commit: string;
  job: Pick<JobSpec, 'name' | 'network'> & {
    /** Names of the repository's secrets to inject as environment variables (masked in logs). */
    secrets?: string[];
    /** A deploy's environment: its own secrets win over the repository-wide ones. */
    environment?: string;
    /**
     * `id-token:` (issue 17 item 7; only when the job asks): the step gets a JWT in DOTGIT_ID_TOKEN
     * for these audiences, naming the run's actor and event. Minted by the sandbox host, never in history.
     */
    idToken?: { audience?: string[]; actor?: string; event?: string };
  };
  step: { name: string; run: string; env: Record<string, string>; timeoutMs?: number };
  attempt: number;
  /** Paths to upload from the workspace after this step succeeds (the job's last step only). */
  artifacts: string[];
  /** The job's last step: after it succeeds, everything in the job's /artifacts directory is uploaded too. */
  lastStep?: boolean;
  /**
   * A later step of a job pinned to its host: its workspace must be there already (a host that lost
   * it answers `WorkspaceLost` instead of running the step on a fresh checkout).
   */
  pinned?: boolean;
  /**
   * A step of a job whose later steps go to its host's own queue (issue 11): the host counts the
   * job as in progress from this step to its clean-up. Deploy jobs (every step on the shared queue) do not.
   */
  pinsHost?: boolean;
  /** The job started again from a fresh checkout because the host it ran on was lost: the line its logs open with. */
  restartNote?: string;
  /**
   * The job's cache (issue 17 item 3): `restore` on its first step (the key is computed there, over
   * the checkout), `save` on its last step once it succeeded, under `key` when the first step found it.
   */
  cache?: { spec: CacheSpec; restore?: boolean; save?: boolean; key?: string };
  /** The run's attempt (issue 17 item 5; only from 2 on): its step logs are stored apart from earlier attempts'. */
  runAttempt?: number;
}

export interface StepResult {
  exitCode: number;
  timedOut: boolean;
  cancelled: boolean;
  /** The attempt number the step ran as (absent from results recorded before issue 10). */
  attempt?: number;
  /** The host id the step ran on and that host's own task queue (absent before issue 11). */
  host?: string;
  hostQueue?: string;
  /** What the step wrote to `$DOTGIT_OUTPUT` (issue 17; only when it wrote something), masked like its log. */
  outputs?: Record<string, string>;
  /** A first step that restored the job's cache: the key it computed, and whether that key itself was found. */
  cache?: { key: string; hit: boolean };
}

export interface RunResult {
  status: RunStatus;
  message?: string;
}

/** Workflow id of a pipeline run: deterministic, so a retried start is a no-op (DESIGN §2.4). */
export function pipelineWorkflowId(tenant: string, repo: string, pushId: string): string {
  return `pipeline:${tenant}:${repo}:${pushId}`;
}

/** A repository as maintenance workflows see it. */
export interface RepoTarget {
  tenantId: number;
  tenant: string;
  repoId: number;
  repo: string;
  /**
   * The storage node holding the repository: its disk activities go to `storageQueue(node)`.
   * Absent in targets (and recorded histories) from before storage nodes: the orchestration queue.
   */
  node?: string;
}

/** Workflow id of one repository's maintenance: one at a time per repository. */
export function maintenanceWorkflowId(tenant: string, repo: string): string {
  return `maintenance:${tenant}:${repo}`;
}
