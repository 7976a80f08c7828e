import type { Client } from '@temporalio/client';
import { ORCHESTRATION_QUEUE } from '../../core/run-types';
import { SEARCH_ATTRIBUTES } from '../../core/search-attributes';
import { repoSearchAttributes, signalWithStartWorkflow, startWorkflow } from '../../core/workflow-starter';

// The one workflow starter: names, ids and arguments go to Temporal unchanged (recorded histories and
// running workflows depend on them), on the orchestration queue unless told otherwise. A stand-in
// client records what it is asked; the real starts are covered by the e2e tests (push-to-pipeline,
// deploys, webhooks, replication, backup).

function recordingClient() {
  const calls: { method: string; name: string; options: Record<string, unknown> }[] = [];
  const client = {
    workflow: {
      start: async (name: string, options: Record<string, unknown>) => void calls.push({ method: 'start', name, options }),
      signalWithStart: async (name: string, options: Record<string, unknown>) => void calls.push({ method: 'signalWithStart', name, options }),
    },
  } as unknown as Client;
  return { client, calls };
}

const pipelineInput = { runId: 'pipeline:acme:web:1', tenantId: 1, tenant: 'acme', repoId: 2, repo: 'web', ref: 'refs/heads/main', commit: 'a'.repeat(40) };

test('startWorkflow starts the named workflow with its id and arguments on the orchestration queue', async () => {
  const { client, calls } = recordingClient();
  await startWorkflow(client, 'pipeline', pipelineInput.runId, [pipelineInput], { workflowIdReusePolicy: 'REJECT_DUPLICATE' });
  await startWorkflow(client, 'repoMaintenance', 'maintenance:acme:web', [{ tenantId: 1, tenant: 'acme', repoId: 2, repo: 'web' }], { taskQueue: 'elsewhere' });
  expect(calls).toEqual([
    { method: 'start', name: 'pipeline', options: { taskQueue: ORCHESTRATION_QUEUE, workflowId: pipelineInput.runId, args: [pipelineInput], workflowIdReusePolicy: 'REJECT_DUPLICATE' } },
    { method: 'start', name: 'repoMaintenance', options: { taskQueue: 'elsewhere', workflowId: 'maintenance:acme:web', args: [{ tenantId: 1, tenant: 'acme', repoId: 2, repo: 'web' }] } },
  ]);
});

test('signalWithStartWorkflow signals (or starts) the workflow with its id, arguments and signal', async () => {
  const { client, calls } = recordingClient();
  const target = { tenantId: 1, tenant: 'acme', repoId: 2, repo: 'web' };
  await signalWithStartWorkflow(client, 'replication', 'replication:acme:web', [target], { name: 'pushed', args: [{ pushedAt: 5 }] });
  expect(calls).toEqual([
    { method: 'signalWithStart', name: 'replication', options: { taskQueue: ORCHESTRATION_QUEUE, workflowId: 'replication:acme:web', args: [target], signal: 'pushed', signalArgs: [{ pushedAt: 5 }] } },
  ]);
});

test('runs and deploys get the same search attributes as before: tenant, tenant/repo, ref, commit (+ environment, status)', () => {
  expect(repoSearchAttributes(pipelineInput)).toEqual([
    { key: SEARCH_ATTRIBUTES.tenant, value: 'acme' },
    { key: SEARCH_ATTRIBUTES.repo, value: 'acme/web' },
    { key: SEARCH_ATTRIBUTES.ref, value: 'refs/heads/main' },
    { key: SEARCH_ATTRIBUTES.commit, value: 'a'.repeat(40) },
  ]);
  expect(repoSearchAttributes({ ...pipelineInput, environment: 'production', status: 'queued' }).slice(4)).toEqual([
    { key: SEARCH_ATTRIBUTES.environment, value: 'production' },
    { key: SEARCH_ATTRIBUTES.status, value: 'queued' },
  ]);
});
