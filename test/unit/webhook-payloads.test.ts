import { signBody } from '../../activities/webhook-activities';
import { combinedState, commitStateOf } from '../../api/services/commit-status-service';
import { pushPayload, workflowRunPayload, workflowRunState, type RepositoryInfo } from '../../core/webhook-payloads';

const repo: RepositoryInfo = { id: 7, tenantId: 3, owner: 'acme', name: 'web', private: true, defaultBranch: 'main', createdAt: '2024-01-01T00:00:00Z' };

test('X-Hub-Signature-256 is GitHub’s: HMAC-SHA256 of the exact body, hex, prefixed', () => {
  // The example from GitHub's "Validating webhook deliveries".
  expect(signBody("It's a Secret to Everybody", 'Hello, World!')).toBe('sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17');
});

test('run statuses map to GitHub workflow_run status/conclusion and to commit states', () => {
  expect(workflowRunState('queued')).toEqual({ status: 'queued', conclusion: null });
  expect(workflowRunState('running')).toEqual({ status: 'in_progress', conclusion: null });
  expect(workflowRunState('failure')).toEqual({ status: 'completed', conclusion: 'failure' });
  expect(['queued', 'running', 'success', 'failure', 'cancelled'].map(commitStateOf)).toEqual(['pending', 'pending', 'success', 'failure', 'error']);
});

test('the combined state follows GitHub: failure wins, then pending (also when empty), else success', () => {
  expect(combinedState([])).toBe('pending');
  expect(combinedState(['success', 'success'])).toBe('success');
  expect(combinedState(['success', 'pending'])).toBe('pending');
  expect(combinedState(['pending', 'error'])).toBe('failure');
  expect(combinedState(['success', 'failure'])).toBe('failure');
});

test('push and workflow_run payloads carry GitHub’s fields', () => {
  const zero = '0'.repeat(40);
  const push = pushPayload({ repo, publicUrl: 'https://git.example/', ref: 'refs/heads/main', before: zero, after: 'b'.repeat(40), forced: false, commits: [], headCommit: null, pusher: 'alice' });
  expect(push).toMatchObject({ ref: 'refs/heads/main', created: true, deleted: false, pusher: { name: 'alice' }, sender: { login: 'alice' } });
  expect(push.repository).toMatchObject({ id: 7, full_name: 'acme/web', private: true, owner: { login: 'acme' }, clone_url: 'https://git.example/acme/web.git' });
  const run = workflowRunPayload({
    repo,
    publicUrl: 'https://git.example',
    action: 'completed',
    sender: 'alice',
    run: { id: 'pipeline:acme:web:1', ref: 'refs/heads/main', commit: 'c'.repeat(40), status: 'success', createdAt: '2024-01-01T00:00:00Z', startedAt: '2024-01-01T00:00:01Z', finishedAt: '2024-01-01T00:00:09Z' },
  });
  expect(run).toMatchObject({ action: 'completed', workflow_run: { node_id: 'pipeline:acme:web:1', head_branch: 'main', head_sha: 'c'.repeat(40), status: 'completed', conclusion: 'success', updated_at: '2024-01-01T00:00:09.000Z' } });
  expect(run.workflow_run.url).toBe('https://git.example/api/v1/runs/pipeline%3Aacme%3Aweb%3A1');
});
