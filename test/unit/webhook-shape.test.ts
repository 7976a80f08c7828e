import { readFileSync } from 'node:fs';
import path from 'node:path';
import { deploymentStatusPayload, numericId, pushPayload, workflowRunPayload, type CommitInfo, type RepositoryInfo } from '../../core/webhook-payloads';

// Issue 15 item 7: our push, workflow_run and deployment_status payloads have the shape GitHub's
// have where consumers read them: every field of a recorded GitHub delivery (trimmed, in
// test/fixtures/github-webhooks) is in ours with the same JSON type (numbers stay numbers).

const fixture = (name: string) => JSON.parse(readFileSync(path.join(__dirname, '..', 'fixtures', 'github-webhooks', `${name}.json`), 'utf8')) as unknown;

const kind = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** Where ours lacks a field of GitHub's or has another JSON type there (a null of GitHub's takes any value). */
function differences(github: unknown, ours: unknown, at = '$'): string[] {
  if (github === null) return [];
  if (kind(github) !== kind(ours)) return [`${at}: GitHub sends ${kind(github)}, ours ${kind(ours)}`];
  if (Array.isArray(github)) return github.length > 0 && (ours as unknown[]).length > 0 ? differences(github[0], (ours as unknown[])[0], `${at}[0]`) : [];
  if (kind(github) !== 'object') return [];
  const o = ours as Record<string, unknown>;
  return Object.entries(github as Record<string, unknown>).flatMap(([k, v]) => (k in o ? differences(v, o[k], `${at}.${k}`) : [`${at}.${k}: missing`]));
}

const repo: RepositoryInfo = { id: 7, tenantId: 3, owner: 'acme', name: 'web', private: false, defaultBranch: 'main', createdAt: '2024-01-01T00:00:00Z' };
const commit: CommitInfo = {
  id: 'c'.repeat(40),
  treeId: 't'.repeat(40),
  message: 'fix',
  timestamp: '2024-01-01T00:00:00Z',
  author: { name: 'alice', email: 'alice@example.com' },
  committer: { name: 'alice', email: 'alice@example.com' },
  added: [],
  removed: [],
  modified: ['README.md'],
};

test('push: every field of GitHub’s recorded push is in ours, with its type', () => {
  const ours = pushPayload({ repo, publicUrl: 'https://git.example', ref: 'refs/heads/main', before: 'a'.repeat(40), after: commit.id, forced: false, commits: [commit], headCommit: commit, pusher: { login: 'alice', id: 12, email: 'alice@example.com' } });
  expect(differences(fixture('push'), ours)).toEqual([]);
  expect(ours.pusher).toEqual({ name: 'alice', email: 'alice@example.com' });
  expect(ours.sender).toMatchObject({ login: 'alice', id: 12 });
  expect(ours.repository).toMatchObject({ full_name: 'acme/web', clone_url: 'https://git.example/acme/web.git', html_url: 'https://git.example/acme/web', default_branch: 'main', private: false, owner: { login: 'acme' } });
});

test('workflow_run: numeric ids beside ours (node_id), and every field of GitHub’s recorded one', () => {
  const ours = workflowRunPayload({
    repo,
    publicUrl: 'https://git.example',
    action: 'completed',
    sender: { login: 'alice', id: 12 },
    run: { id: 'pipeline:acme:web:1', ref: 'refs/heads/main', commit: commit.id, status: 'success', createdAt: '2024-01-01T00:00:00Z', startedAt: '2024-01-01T00:00:01Z', finishedAt: '2024-01-01T00:00:09Z' },
  });
  expect(differences(fixture('workflow_run'), ours)).toEqual([]);
  expect(ours.workflow_run).toMatchObject({ id: numericId('run', 'pipeline:acme:web:1'), node_id: 'pipeline:acme:web:1', workflow_id: ours.workflow.id });
  expect(Number.isSafeInteger(ours.workflow_run.id)).toBe(true);
});

test('deployment_status: every field of GitHub’s recorded one, ids numeric', () => {
  const ours = deploymentStatusPayload({
    repo,
    publicUrl: 'https://git.example',
    now: new Date('2024-01-01T00:00:00Z'),
    creator: { login: 'alice', id: 12 },
    event: { event: 'deployment_status', deployId: 'deploy:acme:web:production:1', environment: 'production', ref: 'refs/heads/main', sha: commit.id, state: 'success', creator: 'alice' },
  });
  expect(differences(fixture('deployment_status'), ours)).toEqual([]);
  expect(ours.deployment).toMatchObject({ id: numericId('deploy', 'deploy:acme:web:production:1'), node_id: 'deploy:acme:web:production:1' });
  expect(ours.deployment_status.id).not.toBe(numericId('deployment_status', 'deploy:acme:web:production:1:failure'));
});

test('the comparison notices a string id where GitHub sends a number, and a missing field', () => {
  expect(differences({ id: 1, a: { b: 'x' } }, { id: '1', a: {} })).toEqual(['$.id: GitHub sends number, ours string', '$.a.b: missing']);
});
