import { readFile } from 'node:fs/promises';
import { api, createPrivateRepo, createTenantWithAdmin, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';

// Issue 17, items 1 and 2, on real parts: one push → a run whose 2×2 matrix minus one exclude runs
// 3 instances in gVisor, each echoing its MATRIX_* values, and a job's output read by a job that needs it;
// matrices from job outputs, whole and axis by axis (ADR 0044).

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
    outputs: { version: "\${{ steps.build.outputs.version }}", leak: "\${{ steps.build.outputs.leak }}", targets: "\${{ steps.build.outputs.targets }}", arches: "\${{ steps.build.outputs.arches }}", big: "\${{ steps.big.outputs.big }}" }
    steps:
      - id: build
        name: build
        run: |
          echo "version=1.2.$((40 + 2))" >> "$DOTGIT_OUTPUT"
          echo "leak=before-$TOKEN-after" >> "$DOTGIT_OUTPUT"
          echo 'targets={"target": ["arm", "x86"]}' >> "$DOTGIT_OUTPUT"
          echo 'arches=["riscv", "s390x"]' >> "$DOTGIT_OUTPUT"
      - id: big
        name: big
        run: |
          printf 'big=' >> "$DOTGIT_OUTPUT"
          head -c 70000 /dev/zero | tr '\\0' x >> "$DOTGIT_OUTPUT"
  dyn:
    needs: [version]
    matrix: \${{ fromJSON(needs.version.outputs.targets) }}
    steps:
      - name: show
        run: echo "target=$MATRIX_TARGET"
  axis:
    needs: [version]
    matrix:
      os: [linux]
      arch: \${{ fromJSON(needs.version.outputs.arches) }}
    steps:
      - name: show
        run: echo "os=$MATRIX_OS arch=\${{ matrix.arch }}"
  use:
    needs: [version, test]
    steps:
      - name: use
        env: { V: "\${{ needs.version.outputs.version }}" }
        run: |
          echo "got $V and \${{ needs.version.outputs.version }}"
          echo "leaked \${{ needs.version.outputs.leak }}"
          echo "big=[\${{ needs.version.outputs.big }}]"
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
    // One axis from an upstream job's JSON output beside a written one (ADR 0044).
    'axis (linux, riscv)/show success',
    'axis (linux, s390x)/show success',
    // The dynamic matrix (issue 17 item 1): one instance per value of the upstream job's JSON output.
    'dyn (arm)/show success',
    'dyn (x86)/show success',
    'test (18, pg)/show success',
    'test (20, pg)/show success',
    'test (20, sqlite)/show success',
    'use/use success',
    'version/big success',
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
  expect(await log('dyn (x86)', 'show')).toContain('target=x86');
  expect(await log('axis (linux, s390x)', 'show')).toContain('os=linux arch=s390x');
  const used = await log('use', 'use');
  expect(used).toContain('got 1.2.42 and 1.2.42');
  // The job that needs it has no secrets (its log masks nothing): the output itself was masked.
  expect(used).toContain('leaked before-***-after');
  expect(used).not.toContain(SECRET);
  // A step's $DOTGIT_OUTPUT over 64 KiB is ignored, saying so: the output is empty downstream.
  expect(await log('version', 'big')).toContain('dotgit: $DOTGIT_OUTPUT holds 70004 bytes, more than 65536; its outputs are ignored');
  expect(used).toContain('big=[]');
  // Instance names hold spaces, which /proc/self/mounts escapes: each tmpfs workspace was still unmounted.
  const workspaceOfRun = runId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80);
  expect((await readFile('/proc/self/mounts', 'utf8')).split('\n').filter((l) => l.includes(workspaceOfRun))).toEqual([]);
});

test('fail-fast on a 2×3 matrix minus an exclude: the failed instance cancels its running sibling and skips the rest; the run fails naming it', async () => {
  const repo = await createPrivateRepo(owner, 'fail-fast');
  const work = await localRepo({
    '.dotgit/pipeline.yml': `
jobs:
  test:
    matrix:
      os: [linux, mac]
      n: [1, 2, 3]
      exclude: [{ os: mac, n: 3 }]
      max-parallel: 2
    steps:
      - name: t
        run: |
          if [ "$MATRIX_OS/$MATRIX_N" = linux/1 ]; then sleep 2; exit 1; fi
          sleep 30
  after:
    needs: [test]
    steps: [{ name: a, run: "true" }]
`,
  });
  const push = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  expect(push.code).toBe(0);
  const run = await waitForRun(runIdsFrom(push.stderr)[0], owner.token);
  expect(run.status).toBe('failure');
  expect(run.message).toBe('failed jobs: test (linux, 1)');
  const status = Object.fromEntries(run.steps.map((s: { job: string; status: string; startedAt: string | null }) => [s.job, s]));
  // 2 × 3 minus the excluded (mac, 3): five instances, the first two started (max-parallel 2).
  expect(Object.keys(status).sort()).toEqual(['after', 'test (linux, 1)', 'test (linux, 2)', 'test (linux, 3)', 'test (mac, 1)', 'test (mac, 2)']);
  expect(status['test (linux, 1)'].status).toBe('failure');
  // The sibling sleeping beside it was cancelled (or, on a slow host, never got to start).
  expect(['cancelled', 'skipped']).toContain(status['test (linux, 2)'].status);
  for (const job of ['test (linux, 3)', 'test (mac, 1)', 'test (mac, 2)', 'after']) expect(status[job]).toMatchObject({ status: 'skipped', startedAt: null });
});
