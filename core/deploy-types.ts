/**
 * Types and message definitions shared by the deploy workflow, its activities and the API that
 * starts and answers it. Workflow code imports this file: definitions and pure functions only.
 */
import { defineSignal, defineUpdate, defineQuery } from '@temporalio/workflow';

export type DeployStatus = 'queued' | 'waiting_approval' | 'running' | 'success' | 'failure' | 'rolled_back' | 'rejected' | 'cancelled';
export const TERMINAL_DEPLOY_STATUSES: readonly DeployStatus[] = ['success', 'failure', 'rolled_back', 'rejected', 'cancelled'];

export interface DeployInput {
  deployId: string;
  tenantId: number;
  tenant: string;
  repoId: number;
  repo: string;
  environment: string;
  ref: string;
  commit: string;
  requestedBy: string;
}

export interface DeployResult {
  status: DeployStatus;
  message?: string;
  /** The commit the rollback steps ran against (the environment's last good deploy). */
  rollbackTo?: string;
  /** Who rejected it at the approval gate. */
  decidedBy?: string;
}

/** Who answered an approval gate. */
export interface Decision {
  by: string;
  comment?: string;
}

/** Approve or reject a deploy waiting at its gate; refused (validator) when it is not waiting. */
export const approveUpdate = defineUpdate<{ status: DeployStatus }, [Decision]>('approve');
export const rejectUpdate = defineUpdate<{ status: DeployStatus }, [Decision]>('reject');
/** The deploy's status as the workflow sees it. */
export const deployStatusQuery = defineQuery<DeployStatus>('status');

/** Environment lock → deploy: your turn. */
export const lockGrantedSignal = defineSignal('lockGranted');
/** Deploy → environment lock: queue me; `requestedAt` (epoch ms) orders deploys that arrive together. */
export const acquireLockSignal = defineSignal<[string, number]>('acquire');
/** Deploy → environment lock: I am done (or gave up waiting). */
export const releaseLockSignal = defineSignal<[string]>('release');

/** Workflow id of a deploy (also its API id): unique per request. */
export function deployWorkflowId(tenant: string, repo: string, environment: string, unique: string): string {
  return `deploy:${tenant}:${repo}:${environment}:${unique}`;
}

/** Workflow id of an environment's lock: one per environment, so deploys to it run one at a time. */
export function environmentLockWorkflowId(tenant: string, repo: string, environment: string): string {
  return `environment:${tenant}:${repo}:${environment}`;
}

/** Job names under which a deploy's steps are recorded (steps table, logs, events). */
export const DEPLOY_JOB = 'deploy';
export const ROLLBACK_JOB = 'rollback';
