import {
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { DeployActivities } from '../activities/deploy-activities';
import {
  approveUpdate,
  deployStatusQuery,
  environmentLockWorkflowId,
  lockGrantedSignal,
  rejectUpdate,
  releaseLockSignal,
  DEPLOY_JOB,
  ROLLBACK_JOB,
  type Decision,
  type DeployInput,
  type DeployResult,
  type DeployStatus,
} from '../core/deploy-types';
import type { EnvironmentSpec } from '../core/pipeline-spec';
import { ORCHESTRATION_QUEUE } from '../core/run-types';
import { SEARCH_ATTRIBUTES } from '../core/search-attributes';
import type { DeploymentState } from '../core/webhook-payloads';
import { runSteps, sandboxSteps } from './step-runner';
import { startWebhookDispatch } from './webhooks';

/** Our deploy statuses as GitHub's deployment states (`deployment_status` webhooks). */
const DEPLOYMENT_STATE: Record<DeployStatus, DeploymentState> = {
  queued: 'queued',
  waiting_approval: 'waiting',
  running: 'in_progress',
  success: 'success',
  failure: 'failure',
  rolled_back: 'failure',
  rejected: 'failure',
  cancelled: 'error',
};

/** Tells the repository's webhooks (a child that outlives the deploy; never fails it). */
function announce(input: DeployInput, status: DeployStatus, description?: string, by?: string): Promise<void> {
  return startWebhookDispatch(
    {
      tenantId: input.tenantId,
      repoId: input.repoId,
      events: [
        {
          event: 'deployment_status',
          deployId: input.deployId,
          environment: input.environment,
          ref: input.ref,
          sha: input.commit,
          state: DEPLOYMENT_STATE[status],
          creator: by ?? input.requestedBy,
          ...(description ? { description: description.slice(0, 140) } : {}),
        },
      ],
    },
    `webhook:${input.deployId}:${status}`,
  );
}

const records = proxyActivities<DeployActivities>({
  taskQueue: ORCHESTRATION_QUEUE,
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
});

/**
 * A deploy of one commit to one environment (CONTRACT `POST …/deploys`):
 * queue at the environment's lock (one deploy at a time, in order) → the environment's spec at the
 * commit → the approval gate, when the environment asks for one → the deploy steps in sandboxes →
 * on failure, the environment's rollback steps against the last good deploy (saga compensation).
 * Cancel works at every stage; the lock is released however the deploy ends.
 */
export async function deploy(input: DeployInput): Promise<DeployResult> {
  let status: DeployStatus = 'queued';
  let granted = false;
  let decision: { approved: boolean; by: Decision } | undefined;
  const lockId = environmentLockWorkflowId(input.tenant, input.repo, input.environment);

  setHandler(lockGrantedSignal, () => {
    granted = true;
  });
  setHandler(deployStatusQuery, () => status);
  const gate = (approved: boolean) => (by: Decision) => {
    decision = { approved, by };
    return { status };
  };
  const onlyWhileWaiting = (d: Decision) => {
    if (status !== 'waiting_approval' || decision) throw new Error(`deploy is ${status}, not waiting for approval`);
    if (!d || typeof d.by !== 'string' || d.by.length === 0) throw new Error('the decision must say who made it');
  };
  setHandler(approveUpdate, gate(true), { validator: onlyWhileWaiting });
  setHandler(rejectUpdate, gate(false), { validator: onlyWhileWaiting });

  const setStatus = async (next: DeployStatus, decidedBy?: string) => {
    status = next;
    upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.status, value: next }]);
    await records.setDeployStatus({ deployId: input.deployId, tenantId: input.tenantId, status: next, decidedBy });
    await announce(input, next, undefined, decidedBy);
  };

  let result: DeployResult;
  try {
    await announce(input, 'queued');
    await records.requestEnvironmentLock({ lockWorkflowId: lockId, deployId: input.deployId, requestedAt: workflowInfo().startTime.getTime() });
    await condition(() => granted);
    const loaded = await records.loadDeployEnvironment(input);
    if (!loaded.ok) result = { status: 'failure', message: loaded.message };
    else result = await runDeploy(input, loaded.environment, setStatus, () => decision);
  } catch (err) {
    // Whatever went wrong, the deploy ends recorded and releases its environment; it never stays running.
    result = isCancellation(err) ? { status: 'cancelled', message: 'cancelled' } : { status: 'failure', message: err instanceof Error ? err.message : String(err) };
  }
  status = result.status;
  await CancellationScope.nonCancellable(async () => {
    upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.status, value: result.status }]);
    await records.finishDeploy({ deployId: input.deployId, tenantId: input.tenantId, status: result.status, message: result.message, rollbackTo: result.rollbackTo, decidedBy: result.decidedBy });
    await announce(input, result.status, result.message, result.decidedBy);
    for (const job of [DEPLOY_JOB, ROLLBACK_JOB]) await sandboxSteps.cleanupWorkspace({ runId: input.deployId, job });
    // The lock may already have moved on (it does when this deploy was never granted it); a failed signal is harmless.
    await getExternalWorkflowHandle(lockId).signal(releaseLockSignal, input.deployId).catch(() => undefined);
  });
  // Issue 14 (patched: earlier histories completed with the result): once recorded and released, a
  // failed deploy is a failed workflow execution and a cancelled one a cancelled execution, for the
  // Web UI's status filters and Failures view. The failure carries the result as details.
  if (patched('failed-deploy-fails-workflow')) {
    if (result.status === 'failure') throw ApplicationFailure.nonRetryable(result.message ?? 'the deploy failed', 'DeployFailed', result);
    if (result.status === 'cancelled' && CancellationScope.current().consideredCancelled) throw new CancelledFailure('the deploy was cancelled');
  }
  return result;
}

async function runDeploy(
  input: DeployInput,
  env: EnvironmentSpec,
  setStatus: (s: DeployStatus, decidedBy?: string) => Promise<void>,
  decision: () => { approved: boolean; by: Decision } | undefined,
): Promise<DeployResult> {
  await records.createDeploySteps({ deployId: input.deployId, tenantId: input.tenantId, job: DEPLOY_JOB, steps: env.deploy.map((s) => s.name), firstPosition: 0 });
  if (env.approval) {
    await setStatus('waiting_approval');
    await condition(() => decision() !== undefined);
    const d = decision()!;
    if (!d.approved) return { status: 'rejected', message: `rejected by ${d.by.by}${d.by.comment ? `: ${d.by.comment}` : ''}`, decidedBy: d.by.by };
    await setStatus('running', d.by.by);
  } else await setStatus('running');

  const base = {
    runId: input.deployId,
    tenantId: input.tenantId,
    tenant: input.tenant,
    repo: input.repo,
    ref: input.ref,
    job: {
      name: DEPLOY_JOB,
      network: env.network,
      secrets: env.secrets,
      environment: env.name,
      // Issue 17 item 7: an environment that asks gets an id-token whose `sub` names it (patched: recorded histories have none).
      ...(env.idToken && patched('id-token') ? { idToken: { ...env.idToken, actor: input.requestedBy, event: 'deploy' } } : {}),
    },
  };
  const outcome = await runSteps({ ...base, commit: input.commit }, env.deploy);
  if (outcome === 'success') return { status: 'success' };
  if (outcome === 'cancelled') return { status: 'cancelled', message: 'cancelled' };

  // Compensation: the environment's rollback steps, in a checkout of the last good deploy.
  if (env.rollback.length === 0) return { status: 'failure', message: 'a deploy step failed; the environment defines no rollback steps' };
  const good = await records.lastGoodDeploy({ tenantId: input.tenantId, repoId: input.repoId, environment: input.environment, excludeId: input.deployId });
  if (!good) return { status: 'failure', message: 'a deploy step failed; there is no earlier successful deploy to roll back to' };
  await records.createDeploySteps({ deployId: input.deployId, tenantId: input.tenantId, job: ROLLBACK_JOB, steps: env.rollback.map((s) => s.name), firstPosition: env.deploy.length });
  const rollbackBase = { ...base, commit: good.commit, job: { ...base.job, name: ROLLBACK_JOB } };
  const rolledBack = await runSteps(rollbackBase, env.rollback.map((s) => ({ ...s, env: { ...s.env, DOTGIT_ROLLBACK_TO: good.commit, DOTGIT_FAILED_COMMIT: input.commit } })));
  if (rolledBack === 'success') return { status: 'rolled_back', message: `a deploy step failed; rolled back to ${good.commit.slice(0, 12)} (deploy ${good.id})`, rollbackTo: good.commit };
  if (rolledBack === 'cancelled') return { status: 'cancelled', message: 'cancelled during rollback' };
  return { status: 'failure', message: `a deploy step failed, and so did the rollback to ${good.commit.slice(0, 12)}`, rollbackTo: good.commit };
}
