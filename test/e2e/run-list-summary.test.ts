import { api, createPrivateRepo, createTenantWithAdmin, waitForRun } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';
import { repoAnswer } from '../../api/schemas/repos';
import { runAnswer, runListAnswer } from '../../api/schemas/runs';

// Issue 15 item 6: a run list carries each run's steps counted by status (GET /runs/{id} lists
// them); the answers fit the response schemas the OpenAPI document describes.

const PIPELINE = `jobs:
  build:
    steps:
      - name: ok
        run: echo fine
      - name: broken
        run: exit 3
      - name: never
        run: echo unreachable
`;

test('GET …/runs carries a steps summary per run that agrees with the run’s steps', async () => {
  const acme = await createTenantWithAdmin();
  const repo = await createPrivateRepo(acme, 'summary');
  const work = await localRepo({ '.dotgit/pipeline.yml': PIPELINE });
  const push = await git(['push', cloneUrl(acme.tenant, repo, acme.token), 'main'], work);
  expect(push.code).toBe(0);
  const [runId] = runIdsFrom(push.stderr);
  expect(runId).toBeDefined();
  await waitForRun(runId, acme.token);

  const one = await api('GET', `/api/v1/runs/${encodeURIComponent(runId)}`, { token: acme.token });
  const run = runAnswer.parse(one.body);
  const list = await api('GET', `/api/v1/repos/${acme.tenant}/${repo}/runs`, { token: acme.token });
  const { runs } = runListAnswer.parse(list.body);
  expect(runs.map((r) => r.id)).toEqual([runId]);
  expect(list.body.runs[0].steps).toBeUndefined();
  const byStatus = (s: string) => run.steps.filter((x) => x.status === s).length;
  expect(runs[0].stepsSummary).toEqual({
    total: run.steps.length,
    queued: byStatus('queued'),
    running: byStatus('running'),
    success: byStatus('success'),
    failure: byStatus('failure'),
    cancelled: byStatus('cancelled'),
    skipped: byStatus('skipped'),
  });
  expect(runs[0].stepsSummary).toMatchObject({ total: 3, success: 1, failure: 1 });
  repoAnswer.parse((await api('GET', `/api/v1/repos/${acme.tenant}/${repo}`, { token: acme.token })).body);
});
