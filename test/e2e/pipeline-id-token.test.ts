import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { api, createPrivateRepo, createTenantWithAdmin, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';
import { platformInfo } from '../harness/platform-info';

// Issue 17 item 7: pipeline id-tokens, verified as a cloud's workload-identity federation would:
// discovery document and JWKS fetched over HTTP from the gateway (no credentials), signature,
// issuer, audience and claims checked with jose.

let owner: TenantFixture;
let repo: string;
let runId: string;
let commit: string;

const FILE = `jobs:
  default-aud:
    id-token: true
    steps:
      - run: |
          echo "token=$DOTGIT_ID_TOKEN"
          printf '%s' "$DOTGIT_ID_TOKEN" > "$DOTGIT_ARTIFACTS/default.jwt"
  chosen-aud:
    id-token: { audience: sts.example.com }
    steps:
      - run: printf '%s' "$DOTGIT_ID_TOKEN" > "$DOTGIT_ARTIFACTS/chosen.jwt"
  none:
    steps:
      - run: 'if [ -z "\${DOTGIT_ID_TOKEN+set}" ]; then echo "no id-token here"; else echo "has id-token"; fi'
  own-api-aud:
    id-token: { audience: dotgit }
    steps:
      - run: echo "should not run"
environments:
  prod:
    id-token: true
    deploy:
      - run: echo "claims=$(printf '%s' "$DOTGIT_ID_TOKEN" | cut -d. -f2)"
`;

const get = (path: string) => api('GET', path, { token: owner.token });

beforeAll(async () => {
  owner = await createTenantWithAdmin();
  repo = await createPrivateRepo(owner, 'oidc');
  const work = await localRepo({ '.dotgit/pipeline.yml': FILE });
  const pushed = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  expect(pushed.code).toBe(0);
  [runId] = runIdsFrom(pushed.stderr);
  commit = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  await waitForRun(runId, owner.token);
}, 180_000);

async function artifactText(name: string): Promise<string> {
  const r = await get(`/api/v1/runs/${encodeURIComponent(runId)}/artifacts/${name}`);
  expect(r.status).toBe(200);
  return r.text;
}

test('a job with id-token: true gets a JWT verifiable with the published JWKS; claims name repo, ref, commit, run, job, actor', async () => {
  const gw = platformInfo().gatewayUrl;
  const discovery = await fetch(`${gw}/.well-known/openid-configuration`);
  expect(discovery.status).toBe(200);
  const config = (await discovery.json()) as { issuer: string; jwks_uri: string; id_token_signing_alg_values_supported: string[] };
  expect(config.issuer).toBe(gw);
  expect(config.jwks_uri).toBe(`${gw}/.well-known/jwks.json`);
  const jwks = createRemoteJWKSet(new URL(config.jwks_uri));

  const token = await artifactText('default.jwt');
  const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: config.issuer, audience: `${gw}/${owner.tenant}`, algorithms: config.id_token_signing_alg_values_supported });
  expect(protectedHeader).toMatchObject({ alg: 'ES256', typ: 'JWT' });
  expect(payload).toMatchObject({
    sub: `repo:${owner.tenant}/${repo}:ref:refs/heads/main`,
    repository: `${owner.tenant}/${repo}`,
    repository_owner: owner.tenant,
    ref: 'refs/heads/main',
    sha: commit,
    run_id: runId,
    job: 'default-aud',
    actor: owner.username,
    event_name: 'push',
  });
  expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(900);

  // Another audience is refused by the verifier, and the platform's API does not take it as a credential.
  await expect(jwtVerify(token, jwks, { issuer: config.issuer, audience: 'sts.example.com' })).rejects.toThrow(/aud/);
  expect((await api('GET', `/api/v1/repos/${owner.tenant}/${repo}`, { token })).status).toBe(401);

  // The chosen audience.
  const chosen = await artifactText('chosen.jwt');
  const verified = await jwtVerify(chosen, jwks, { issuer: config.issuer, audience: 'sts.example.com' });
  expect(verified.payload.job).toBe('chosen-aud');
  await expect(jwtVerify(chosen, jwks, { issuer: config.issuer, audience: `${gw}/${owner.tenant}` })).rejects.toThrow(/aud/);
});

test('the token is masked in logs; a job without id-token gets none; the platform refuses its own API audience', async () => {
  const log = (job: string) => get(`/api/v1/runs/${encodeURIComponent(runId)}/logs?job=${job}&step=step-1`).then((r) => r.text);
  expect(await log('default-aud')).toContain('token=***');
  expect(await log('none')).toContain('no id-token here');
  const run = (await get(`/api/v1/runs/${encodeURIComponent(runId)}`)).body as { steps: { job: string; status: string }[] };
  const status = Object.fromEntries(run.steps.map((s) => [s.job, s.status]));
  expect(status).toEqual({ 'default-aud': 'success', 'chosen-aud': 'success', none: 'success', 'own-api-aud': 'failure' });
  expect(await log('own-api-aud')).toMatch(/id-token audience "dotgit" is refused: it is the platform's own API audience/);
});

test("a deploy job's id-token names the environment in sub", async () => {
  const r = await api('POST', `/api/v1/repos/${owner.tenant}/${repo}/deploys`, { token: owner.token, body: { ref: 'main', environment: 'prod' } });
  expect(r.status).toBe(202);
  const deadline = Date.now() + 120_000;
  let status = '';
  while (Date.now() < deadline && !['success', 'failure', 'rolled_back', 'cancelled'].includes(status)) {
    status = (await get(r.body.links.self)).body.status;
    if (status !== 'success') await new Promise((res) => setTimeout(res, 500));
  }
  expect(status).toBe('success');
  const log = (await get(`/api/v1/deploys/${encodeURIComponent(r.body.id)}`)).body;
  expect(log.status).toBe('success');
  const events = await fetch(`${platformInfo().gatewayUrl}/api/v1/deploys/${encodeURIComponent(r.body.id)}/events`, { headers: { authorization: `Bearer ${owner.token}` } }).then((res) => res.text());
  const m = /claims=([A-Za-z0-9_-]+)/.exec(events);
  expect(m).not.toBeNull();
  const claims = decodeJwt(`e30.${m![1]}.x`);
  expect(claims).toMatchObject({ sub: `repo:${owner.tenant}/${repo}:environment:prod`, environment: 'prod', actor: owner.username, event_name: 'deploy' });
}, 180_000);
