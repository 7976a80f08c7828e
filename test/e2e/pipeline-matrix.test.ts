import { readFile } from 'node:fs/promises';
import { api, createTenantWithAdmin, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';

// Issue 17, items 1 and 2, on real parts: one push → a run whose 2×2 matrix minus one exclude runs
// 3 instances in gVisor, each echoing its MATRIX_* values, and a job's output read by a job that needs it.

const PIPELINE = `
jobs:
  test:
    matrix:
      node: [18, 20]
      db: [pg, sqlite]
      exclude: [{ node: 18, db: sqlite }]
    steps:
      - name: show
        run: echo "node=$MATRIX_NODE db=$MATRIX_DB written \${{ matrix.node }}/\${{ matrix.db }}"
  version:
    secrets: [TOKEN]
    outputs: { version: "\${{ steps.build.outputs.version }}", leak: "\${{ steps.build.outputs.leak }}" }
    steps:
      - id: build
        name: build
        run: |
          echo "version=1.2.$((40 + 2))" >> "$DOTGIT_OUTPUT"
          echo "leak=before-$TOKEN-after" >> "$DOTGIT_OUTPUT"
  use:
    needs: [version, test]
    steps:
      - name: use
        env: { V: "\${{ needs.version.outputs.version }}" }
        run: |
          echo "got $V and \${{ needs.version.outputs.version }}"
          echo "leaked \${{ needs.version.outputs.leak }}"
`;

let owner: TenantFixture;
const SECRET = 's3cr3t-value-for-outputs';

beforeAll(async () => {
  owner = await createTenantWithAdmin();
  const created = await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name: 'matrix', visibility: 'private' } });
  expect(created.status).toBe(201);
  const secret = await api('PUT', `/api/v1/repos/${owner.tenant}/matrix/secrets/TOKEN`, { token: owner.token, body: { value: SECRET } });
  expect(secret.status).toBeLessThan(300);
});

test('a 2×2 matrix minus one exclude runs 3 instances with their MATRIX_* values; a job output reaches the job that needs it', async () => {
  const work = await localRepo({ '.dotgit/pipeline.yml': PIPELINE });
  const push = await git(['push', cloneUrl(owner.tenant, 'matrix', owner.token), 'main'], work);
  expect(push.code).toBe(0);
  const [runId] = runIdsFrom(push.stderr);
  const run = await waitForRun(runId, owner.token);
  expect(run.status).toBe('success');
  expect(run.steps.map((s: { job: string; name: string; status: string }) => `${s.job}/${s.name} ${s.status}`).sort()).toEqual([
    'test (18, pg)/show success',
    'test (20, pg)/show success',
    'test (20, sqlite)/show success',
    'use/use success',
    'version/build success',
  ]);
  const log = async (job: string, step: string) => {
    const res = await api('GET', `/api/v1/runs/${encodeURIComponent(runId)}/logs?job=${encodeURIComponent(job)}&step=${step}`, { token: owner.token });
    expect(res.status).toBe(200);
    return res.text;
  };
  for (const [node, db] of [['18', 'pg'], ['20', 'pg'], ['20', 'sqlite']]) {
    expect(await log(`test (${node}, ${db})`, 'show')).toContain(`node=${node} db=${db} written ${node}/${db}`);
  }
  const used = await log('use', 'use');
  expect(used).toContain('got 1.2.42 and 1.2.42');
  // The job that needs it has no secrets (its log masks nothing): the output itself was masked.
  expect(used).toContain('leaked before-***-after');
  expect(used).not.toContain(SECRET);
  // Instance names hold spaces, which /proc/self/mounts escapes: each tmpfs workspace was still unmounted.
  const workspaceOfRun = runId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80);
  expect((await readFile('/proc/self/mounts', 'utf8')).split('\n').filter((l) => l.includes(workspaceOfRun))).toEqual([]);
});
