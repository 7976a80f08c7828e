import path from 'node:path';
import { promises as fs } from 'node:fs';
import { Worker } from '@temporalio/worker';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { SandboxActivities } from '../../activities/sandbox-activities';
import type { ScheduleActivities } from '../../activities/schedule-activities';
import type { DeployActivities } from '../../activities/deploy-activities';
import type { WebhookActivities } from '../../activities/webhook-activities';
import { acquireLockSignal, type DeployInput } from '../../core/deploy-types';
import { parsePipeline } from '../../core/pipeline-spec';
import { hostQueue, ORCHESTRATION_QUEUE, SANDBOX_QUEUE, type PipelineInput, type StepInput } from '../../core/run-types';
import type { ScheduledPipelineInput } from '../../core/pipeline-schedules';
import { ROOT } from '../../infra/root';
import { noopOrchestrationActivities, useWorkflowTestEnv } from '../helpers/workflow-env';

// Issue 17 items 6 and 7 in the workflows: only a job with id-token: asks its sandbox for one (with
// the run's actor and event; the token itself is minted by the host, never in history), and a
// schedule's firing queues one run. Record the histories anew with DOTGIT_RECORD_HISTORY=1.

const WORKFLOWS = path.join(ROOT, 'workflows', 'index.ts');
const env = useWorkflowTestEnv();
const record = async (file: string, history: unknown) => {
  if (process.env.DOTGIT_RECORD_HISTORY === '1') await fs.writeFile(path.join(__dirname, 'histories', file), historyToJSON(history as never));
};

test('only the job that asks gets idToken in its step input, with the run actor and event', async () => {
  const input: PipelineInput = { runId: 'pipeline:t:r:oidc', tenantId: 1, tenant: 't', repo: 'r', repoId: 1, ref: 'refs/heads/main', commit: 'c'.repeat(40), event: 'push', actor: 'alice' };
  const spec = parsePipeline('jobs:\n  cloud:\n    id-token: { audience: sts.example.com }\n    steps: [{ run: deploy }]\n  plain:\n    steps: [{ run: test }]\n');
  const asked: Record<string, StepInput['job']['idToken']> = {};
  const orchestration = noopOrchestrationActivities(spec);
  const sandbox: Partial<SandboxActivities> = {
    runStep: async (s) => {
      asked[s.job.name] = s.job.idToken;
      return { exitCode: 0, timedOut: false, cancelled: false, attempt: s.attempt, host: 'host-a', hostQueue: hostQueue('host-a') };
    },
    cleanupWorkspace: async () => undefined,
  };
  const w1 = await Worker.create({ connection: env().nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities: orchestration });
  const w2 = await Worker.create({ connection: env().nativeConnection, taskQueue: SANDBOX_QUEUE, activities: sandbox });
  const w3 = await Worker.create({ connection: env().nativeConnection, taskQueue: hostQueue('host-a'), activities: sandbox });
  const handle = await env().client.workflow.start('pipeline', { workflowId: input.runId, taskQueue: ORCHESTRATION_QUEUE, args: [input] });
  const result = await w1.runUntil(w2.runUntil(w3.runUntil(() => handle.result())));
  expect(result).toMatchObject({ status: 'success' });
  expect(asked).toEqual({ cloud: { audience: ['sts.example.com'], actor: 'alice', event: 'push' }, plain: undefined });
  await record('pipeline-oidc-v1.json', await handle.fetchHistory());
});

test('a schedule firing queues one run through its activity', async () => {
  const input: ScheduledPipelineInput = { tenantId: 1, tenant: 't', repoId: 7, repo: 'r', cron: '0 3 * * *' };
  const firings: string[] = [];
  const activities: ScheduleActivities = {
    queueScheduledRun: async (a) => {
      firings.push(a.firing);
      return 'pipeline:t:r:schedule-1';
    },
  };
  const w = await Worker.create({ connection: env().nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities });
  const handle = await env().client.workflow.start('scheduledPipeline', { workflowId: 'dotgit-sched-7-0-2026-01-01T03:00:00Z', taskQueue: ORCHESTRATION_QUEUE, args: [input] });
  expect(await w.runUntil(() => handle.result())).toBe('pipeline:t:r:schedule-1');
  expect(firings).toEqual(['dotgit-sched-7-0-2026-01-01T03:00:00Z']);
  await record('pipeline-sched-v1.json', await handle.fetchHistory());
});

test("a deploy of an environment with id-token: asks for one naming the requester, event deploy", async () => {
  const spec = parsePipeline('jobs:\n  j:\n    steps: [{ run: x }]\nenvironments:\n  prod:\n    id-token: { audience: vault }\n    deploy: [{ name: ship, run: x }]\n');
  const input: DeployInput = { deployId: 'deploy:t:r:prod:1', tenantId: 1, tenant: 't', repoId: 1, repo: 'r', environment: 'prod', ref: 'refs/heads/main', commit: 'd'.repeat(40), requestedBy: 'bob' };
  const asked: StepInput['job'][] = [];
  const deploy: DeployActivities = {
    loadDeployEnvironment: async () => ({ ok: true, environment: spec.environments![0] }),
    requestEnvironmentLock: async (a) => {
      await env().client.workflow.signalWithStart('environmentLock', { workflowId: a.lockWorkflowId, taskQueue: ORCHESTRATION_QUEUE, args: [{ queue: [] }], signal: acquireLockSignal, signalArgs: [a.deployId, a.requestedAt] });
    },
    setDeployStatus: async () => undefined,
    createDeploySteps: async () => undefined,
    lastGoodDeploy: async () => null,
    finishDeploy: async () => undefined,
  };
  const webhooks: WebhookActivities = { planWebhookEvent: async () => null, deliverWebhook: async () => ({ status: 200, outcome: 'success' }) };
  const sandbox: Partial<SandboxActivities> = {
    runStep: async (s) => {
      asked.push(s.job);
      return { exitCode: 0, timedOut: false, cancelled: false };
    },
    cleanupWorkspace: async () => undefined,
  };
  const w1 = await Worker.create({ connection: env().nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities: { ...deploy, ...webhooks, failStep: async () => undefined } });
  const w2 = await Worker.create({ connection: env().nativeConnection, taskQueue: SANDBOX_QUEUE, activities: sandbox });
  const handle = await env().client.workflow.start('deploy', { workflowId: input.deployId, taskQueue: ORCHESTRATION_QUEUE, args: [input] });
  expect(await w1.runUntil(w2.runUntil(() => handle.result()))).toMatchObject({ status: 'success' });
  expect(asked).toEqual([{ name: expect.any(String), network: 'none', secrets: [], environment: 'prod', idToken: { audience: ['vault'], actor: 'bob', event: 'deploy' } }]);
  await record('pipeline-oidc-deploy-v1.json', await handle.fetchHistory());
});
