import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, createHmac } from 'node:crypto';
import { rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { CHROMIUM_FLAGS, ensureChromium, freshUserDataDir } from '../../infra/provision/chromium';
import { ROOT } from '../../infra/root';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName, waitForRun } from '../helpers/api-client';
import { deployOnlyPipeline } from '../helpers/deploy-pipeline';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';

// The web console (issue 18, ADR 0032) in a real headless Chromium against the shared platform:
// sign-in through npm start's one-time link, a repository made in the browser, a pushed pipeline's
// log arriving line by line on the run page, and the session cookie's CSRF and 401 refusals.

const TICKS = 6;
const LONG = 20_000;
const LAST_TICK_PAUSE_S = 20;
// Slow lines, one a second, so the page is seen mid-step, and a long pause before the last tick: on a
// loaded machine the run page can open seconds into the step, and it must still find the last tick to
// come (once in CI the page opened after the five-second tick loop had ended). Then an ANSI red line,
// a markup line and the checksum of an artifact (TICKS + 3 lines), and a long step.
const PIPELINE = `
jobs:
  build:
    steps:
      - name: slow
        run: |
          for i in $(seq 1 $((${TICKS} - 1))); do echo "tick $i"; sleep 1; done
          sleep ${LAST_TICK_PAUSE_S}; echo "tick ${TICKS}"
          printf '\\033[31mred alert\\033[0m\\n'
          echo '<img src=x onerror=alert(1)>'
          mkdir -p out && head -c 3000 /dev/urandom > out/blob.bin && sha256sum out/blob.bin
      - name: long
        run: seq -f 'row %g' 1 ${LONG}
    artifacts: [out/blob.bin]
`;
// Never ends by itself: cancelled from the run page.
// Its second job needs the first (and never runs): the run page draws the edge between them.
const ENDLESS = `
jobs:
  wait:
    steps:
      - name: forever
        run: |
          echo started
          sleep 600
  after:
    needs: [wait]
    steps:
      - run: echo never
`;

let context: BrowserContext;
/** The repository the run-page test made (a reader of another tenant must not see it). */
let madeRepo: string;
let madeRun: string;
/** The run the cancel test cancelled (twice). */
let cancelledRun: string;
let page: Page;
let userDataDir: string;
const dialogs: string[] = [];
const gw = () => platformInfo().gatewayUrl;

beforeAll(async () => {
  const executablePath = await ensureChromium({ info: () => undefined, warn: (m) => console.warn(m), debug: () => undefined });
  userDataDir = freshUserDataDir();
  context = await chromium.launchPersistentContext(userDataDir, { executablePath, headless: true, args: CHROMIUM_FLAGS.filter((f) => f !== '--headless') });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
});

afterAll(async () => {
  await context?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

/**
 * A browser test: when it fails, a screenshot of the page as it was is kept as a test artefact
 * (`.test-data/screenshots/<test>.png`, beside the other test data; the path is printed).
 */
function browserTest(name: string, fn: () => Promise<void>, timeout?: number): void {
  test(
    name,
    async () => {
      try {
        await fn();
      } catch (err) {
        const file = path.join(ROOT, '.test-data', 'screenshots', `console-${name.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 80)}.png`);
        await page?.screenshot({ path: file, fullPage: true }).then(() => console.warn(`screenshot: ${file}`), () => undefined);
        throw err;
      }
    },
    timeout,
  );
}

const sessionCookie = async () => (await context.cookies(gw())).find((c) => c.name === 'dotgit_session');

browserTest('the one-time link signs the admin in with an HttpOnly, SameSite=Strict cookie; the code leaves the URL and works once', async () => {
  const link = platformInfo().consoleUrl;
  expect(link).toMatch(/\/signin#code=[A-Za-z0-9_-]{40,}$/);
  const [doc] = await Promise.all([page.waitForResponse((r) => r.url() === link.split('#')[0]), page.goto(link)]);
  await page.getByRole('heading', { name: 'Repositories' }).waitFor();
  expect(page.url()).toBe(`${gw()}/`);
  // Safe by construction (ADR 0032): a strict CSP without inline script, and the page has none.
  const csp = (await doc.allHeaders())['content-security-policy'];
  expect(csp).toContain("script-src 'self'");
  expect(csp).toContain("object-src 'none'");
  expect(csp).not.toContain('unsafe-inline');
  expect(await page.locator('script:not([src])').count()).toBe(0);
  const cookie = await sessionCookie();
  expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });
  expect(cookie!.value).not.toContain(platformInfo().adminToken);
  await expect(page.evaluate(() => document.cookie)).resolves.toBe('');
  // Used once: the same code again is refused.
  const again = await fetch(`${gw()}/console/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: link.split('#code=')[1] }) });
  expect(again.status).toBe(401);
  expect((await again.json()).error.message).toMatch(/already used or has expired/);
});

browserTest('a repository made in the browser; its run page shows the live log line by line from line 1, ANSI red as red, markup as text', async () => {
  const name = uniqueName('console');
  await page.getByLabel('name').fill(name);
  await page.getByRole('button', { name: 'Create' }).click();
  await page.getByRole('link', { name: `dotgit/${name}` }).click();
  await page.getByText(`${gw()}/dotgit/${name}.git`).waitFor();

  const work = await localRepo({ '.dotgit/pipeline.yml': PIPELINE });
  const push = await git(['push', cloneUrl('dotgit', name, platformInfo().adminToken), 'main'], work);
  expect(push.code).toBe(0);
  const [runId] = runIdsFrom(push.stderr);
  madeRepo = name;
  madeRun = runId;

  // The repository page lists the run without a reload; its link opens the run page.
  await page.locator(`a[href="/runs/${encodeURIComponent(runId)}"]`).click();
  const log = page.getByRole('region', { name: 'log' }).or(page.locator('.log-box'));
  await log.getByText('tick 1', { exact: true }).waitFor({ timeout: 90_000 });
  // Line by line: the first line is on screen while the step is still printing the later ones.
  expect(await log.getByText(`tick ${TICKS}`, { exact: true }).count()).toBe(0);
  await log.getByText(`tick ${TICKS}`, { exact: true }).waitFor({ timeout: (LAST_TICK_PAUSE_S + 30) * 1000 });
  // Not following, the view stays at line 1 as the long step streams in.
  await page.getByRole('checkbox', { name: 'follow' }).uncheck();

  // Every line from line 1, numbered in order.
  const texts = await page.locator('.log-line .log-text').allTextContents();
  expect(texts.slice(0, TICKS)).toEqual(Array.from({ length: TICKS }, (_, i) => `tick ${i + 1}`));
  const red = log.getByText('red alert', { exact: true });
  await expect(red.evaluate((el) => getComputedStyle(el).color)).resolves.toBe('rgb(255, 0, 0)');
  await log.getByText('<img src=x onerror=alert(1)>', { exact: true }).waitFor();
  expect(await page.locator('.log-box img').count()).toBe(0);
  expect(dialogs).toEqual([]);
  await page.locator('.run-head .badge.s-success').waitFor({ timeout: 90_000 });
  // The job graph: the job and its step with their status and a duration.
  await expect(page.locator('.job .job-head').textContent()).resolves.toMatch(/^build\s*success\s*\d/);
  expect((await waitForRun(runId, platformInfo().adminToken)).status).toBe('success');
  // The run's workflow in the Temporal Web UI, found by its id.
  const temporal = await page.getByRole('link', { name: 'Temporal workflow' }).getAttribute('href');
  expect(temporal).toContain('/namespaces/dotgit/workflows?query=');
  expect(new URL(temporal!).searchParams.get('query')).toBe(`WorkflowId="${runId}"`);

  // Full scrollback: all ${LONG} lines of the long step are kept; its last line found by search, line 1 still there.
  // (TICKS ticks, the red line, the markup, the checksum, LONG rows, and dotgit's line on the artifact it uploaded.)
  await page.getByText(`${(TICKS + 4 + LONG).toLocaleString('en-US')} lines`).waitFor();
  await page.getByLabel('search the log').fill(`row ${LONG}`);
  await page.getByLabel('search the log').press('Enter');
  await log.getByText(`row ${LONG}`, { exact: true }).waitFor();
  await page.locator('.log-box').evaluate((el) => el.scrollTo(0, 0));
  await log.getByText('tick 1', { exact: true }).waitFor();
  // Windowed: only the lines in view are in the DOM.
  expect(await page.locator('.log-line').count()).toBeLessThan(500);
  // The artifact downloads byte for byte (its sha256 is what the step printed).
  const printed = /^([0-9a-f]{64})  out\/blob\.bin$/m.exec((await api('GET', `/api/v1/runs/${encodeURIComponent(runId)}/logs?job=build&step=slow`, { token: platformInfo().adminToken })).text)![1];
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'out/blob.bin' }).click()]);
  const bytes = await readFile((await download.path())!);
  expect(bytes.length).toBe(3000);
  expect(createHash('sha256').update(bytes).digest('hex')).toBe(printed);
  // A raw step log downloads as the stored text.
  const [raw] = await Promise.all([page.waitForEvent('download'), page.locator('.steps li', { hasText: 'slow' }).getByRole('link', { name: 'raw' }).click()]);
  expect((await readFile((await raw.path())!, 'utf8')).split('\n')[0]).toBe('tick 1');
  // A line link: #L3 marks line 3.
  await page.goto(`${gw()}/runs/${encodeURIComponent(runId)}#L3`);
  await expect(page.locator('.log-line.active .log-text').textContent()).resolves.toBe('tick 3');

  // Opened after the run ended (a deep link, a reload): the whole log from the stored step logs.
  await page.reload();
  // (Every line printed, plus any the platform adds to the stored log, e.g. about artifacts.)
  await page.waitForFunction((n) => Number(document.querySelector('.log-bar .muted')?.textContent?.replace(/\D/g, '')) >= n, TICKS + 3 + LONG);
  await page.getByLabel('search the log').fill(`row ${LONG}`);
  await page.getByLabel('search the log').press('Enter');
  await log.getByText(`row ${LONG}`, { exact: true }).waitFor();
  await page.getByRole('checkbox', { name: 'follow' }).uncheck();
  await page.locator('.log-box').evaluate((el) => el.scrollTo(0, 0));
  await log.getByText('tick 1', { exact: true }).waitFor();
}, 240_000);

browserTest('a running run is cancelled from its run page, re-run from it (a fresh log for attempt 2), and cancelled again', async () => {
  const name = uniqueName('cancel');
  expect((await api('POST', '/api/v1/repos', { token: platformInfo().adminToken, body: { owner: 'dotgit', name, visibility: 'private' } })).status).toBe(201);
  const work = await localRepo({ '.dotgit/pipeline.yml': ENDLESS });
  const push = await git(['push', cloneUrl('dotgit', name, platformInfo().adminToken), 'main'], work);
  const [runId] = runIdsFrom(push.stderr);
  await page.goto(`${gw()}/runs/${encodeURIComponent(runId)}`);
  cancelledRun = runId;
  await page.locator('.log-box').getByText('started', { exact: true }).waitFor({ timeout: 90_000 });
  // The job graph (issue 18): the run answer carries each job's needs; one edge, from wait to after.
  const edge = page.locator('path.edge[data-from="wait"][data-to="after"]');
  await edge.waitFor({ state: 'attached' });
  expect(await page.locator('path.edge').count()).toBe(1);
  expect(await edge.getAttribute('d')).toMatch(/^M\d/);
  await page.locator('.job-node[data-job="after"]').getByText('needs wait').waitFor();
  // Why it waits, as the API says (issue 17 item 8's pending reasons).
  await page.locator('.job-node[data-job="after"] .pending').getByText('waiting for needs: wait').waitFor();
  const jobs = (await api('GET', `/api/v1/runs/${encodeURIComponent(runId)}`, { token: platformInfo().adminToken })).body.jobs;
  expect([...jobs].sort((a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name))).toEqual([
    { name: 'after', needs: ['wait'] },
    { name: 'wait', needs: [] },
  ]);
  await page.getByRole('button', { name: 'Cancel' }).click();
  await page.locator('.run-head .badge.s-cancelled').waitFor({ timeout: 90_000 });
  expect((await waitForRun(runId, platformInfo().adminToken)).status).toBe('cancelled');
  // Re-run from the page: the next attempt's log streams into a fresh view; cancelled again.
  await page.getByRole('button', { name: 'Re-run all' }).click();
  await page.locator('.run-head .badge.s-running').waitFor({ timeout: 90_000 });
  await page.locator('.log-box').getByText('started', { exact: true }).waitFor({ timeout: 90_000 });
  expect(await page.locator('.log-box').getByText('started', { exact: true }).count()).toBe(1);
  await page.getByRole('button', { name: 'Cancel' }).click();
  await page.locator('.run-head .badge.s-cancelled').waitFor({ timeout: 60_000 });
  expect((await api('GET', `/api/v1/runs/${encodeURIComponent(runId)}`, { token: platformInfo().adminToken })).body).toMatchObject({ status: 'cancelled', attempt: 2 });
}, 240_000);

browserTest('a deploy waiting for approval is approved from the repository\'s deploys page', async () => {
  const name = uniqueName('deploy');
  const token = platformInfo().adminToken;
  expect((await api('POST', '/api/v1/repos', { token, body: { owner: 'dotgit', name, visibility: 'private' } })).status).toBe(201);
  const work = await localRepo({ '.dotgit/pipeline.yml': deployOnlyPipeline({ production: { approval: true } }) });
  expect((await git(['push', cloneUrl('dotgit', name, token), 'main'], work)).code).toBe(0);
  const made = await api('POST', `/api/v1/repos/dotgit/${name}/deploys`, { token, body: { ref: 'main', environment: 'production' } });
  expect(made.status).toBe(202);
  await page.goto(`${gw()}/dotgit/${name}/deploys`);
  await page.getByRole('button', { name: 'Approve' }).click({ timeout: 60_000 });
  await page.locator('.runs .badge.s-success').waitFor({ timeout: 90_000 });
  const deploy = await api('GET', `/api/v1/deploys/${encodeURIComponent(made.body.id)}`, { token });
  expect(deploy.body).toMatchObject({ status: 'success', decidedBy: 'admin' });
  // The environment now shows what is deployed.
  await page.locator('.list li', { hasText: 'production' }).locator('code').waitFor();
});

browserTest('the repository\'s runs filter by status and event, kept in the URL', async () => {
  const runLink = page.locator(`a[href="/runs/${encodeURIComponent(madeRun)}"]`);
  await page.goto(`${gw()}/dotgit/${madeRepo}?event=push&status=success`);
  await runLink.waitFor();
  await page.getByLabel('event').selectOption('manual');
  await page.getByText('No runs.').waitFor();
  // The list filters at once; the address bar follows a moment later (CI saw the old one).
  await page.waitForURL((u) => u.search === '?status=success&event=manual', { timeout: 10_000 });
  expect(new URL(page.url()).search).toBe('?status=success&event=manual');
  await page.goto(`${gw()}/dotgit/${madeRepo}?status=failure`);
  await page.getByText('No runs.').waitFor();
  expect(await runLink.count()).toBe(0);
});

browserTest('repository settings: a secret is set by name (its value never shown again), a branch pattern protected', async () => {
  const token = platformInfo().adminToken;
  await page.goto(`${gw()}/dotgit/${madeRepo}/settings`);
  await page.getByLabel('secret name').fill('API_KEY');
  await page.getByLabel('value').fill('s3cr3t-value-123');
  await page.getByRole('button', { name: 'Set' }).click();
  await page.locator('.list code', { hasText: 'API_KEY' }).waitFor();
  expect(await page.content()).not.toContain('s3cr3t-value-123');
  expect((await api('GET', `/api/v1/repos/dotgit/${madeRepo}/secrets`, { token })).body.secrets.map((x: any) => x.name)).toEqual(['API_KEY']);
  await page.getByLabel('branch or pattern').fill('release/*');
  await page.getByRole('button', { name: 'Protect' }).click();
  await page.locator('.list code', { hasText: 'release/*' }).waitFor();
  expect((await api('GET', `/api/v1/repos/dotgit/${madeRepo}/protections`, { token })).body.protections).toEqual([{ pattern: 'release/*', allowForcePush: false, allowDeletion: false }]);
});

browserTest('the repository browser: branches, commits with their run, the tree with breadcrumbs, a file and its raw download', async () => {
  const token = platformInfo().adminToken;
  await page.goto(`${gw()}/dotgit/${madeRepo}`);
  await page.getByRole('navigation', { name: 'repository' }).getByRole('link', { name: 'Branches' }).click();
  await page.locator('.list li', { hasText: 'main' }).getByText('default').waitFor();
  // Commits: the pushed commit with its run's status, linking to the run page.
  await page.getByRole('navigation', { name: 'repository' }).getByRole('link', { name: 'Commits' }).click();
  const runBadge = page.locator(`.commits a[href="/runs/${encodeURIComponent(madeRun)}"]`);
  await runBadge.locator('.badge.s-success').waitFor();
  // The tree at the default branch, a directory, then the file; breadcrumbs lead back.
  await page.getByRole('navigation', { name: 'repository' }).getByRole('link', { name: 'Code' }).click();
  await page.getByRole('link', { name: '.dotgit/' }).click();
  await page.getByRole('navigation', { name: 'path' }).getByText('.dotgit').waitFor();
  expect(page.url()).toBe(`${gw()}/dotgit/${madeRepo}/tree/.dotgit`);
  await page.getByRole('link', { name: 'pipeline.yml' }).click();
  const file = page.getByLabel('file');
  await file.getByText('- name: slow').waitFor();
  expect(await file.locator('.file-line').count()).toBe(PIPELINE.replace(/\n$/, '').split('\n').length);
  const [raw] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Raw' }).click()]);
  expect(await readFile((await raw.path())!, 'utf8')).toBe(PIPELINE);
  expect((await api('GET', `/api/v1/repos/dotgit/${madeRepo}/raw/.dotgit/pipeline.yml`, { token })).text).toBe(PIPELINE);
  await page.getByRole('navigation', { name: 'path' }).getByRole('link', { name: madeRepo }).click();
  await page.getByRole('link', { name: '.dotgit/' }).waitFor();
  // Back and forward work through the browser's history; an unknown ref says so.
  await page.goBack();
  await file.getByText('- name: slow').waitFor();
  await page.goto(`${gw()}/dotgit/${madeRepo}/tree?ref=nope`);
  await page.getByText(/ref "nope" not found/).waitFor();
});

browserTest('the admin page creates a tenant and adds a user to it', async () => {
  const tenant = uniqueName('ct');
  const username = uniqueName('cu');
  await page.goto(`${gw()}/admin`);
  await page.getByLabel('new tenant').fill(tenant);
  await page.getByRole('button', { name: 'Create tenant' }).click();
  await page.getByText(`tenant ${tenant} created`).waitFor();
  await page.getByLabel('tenant', { exact: true }).fill(tenant);
  await page.getByLabel('user name').fill(username);
  await page.getByRole('button', { name: 'Add user' }).click();
  await page.getByText(`user ${username} added as member`).waitFor();
  // Their first token, made here and shown once (the README walkthrough without the CLI), works.
  await page.getByRole('button', { name: `Create a token for ${username}` }).click();
  const made = await page.getByLabel('new token').textContent();
  expect((await api('GET', '/api/v1/tokens', { token: made! })).status).toBe(200);
  // Restores and drills, and replica status: what the platform's API says, shown as text. A restore of
  // one repository (no Postgres) is the cheap real row; the daily drill lists the same way (kind drill).
  const token = platformInfo().adminToken;
  const restore = await api<{ id: string }>('POST', '/api/v1/restores', { token, body: { at: new Date().toISOString(), repos: [`dotgit/${madeRepo}`], postgres: false } });
  expect(restore.status).toBe(202);
  const listed = await api<{ restores: { id: string; kind: string }[] }>('GET', '/api/v1/restores', { token });
  expect(listed.body.restores.map((r) => r.id)).toContain(restore.body.id);
  const replication = await api<{ database: unknown; zones: { name: string; kind: string }[] }>('GET', '/api/v1/admin/replicas', { token });
  expect(replication.body.zones).toEqual([{ name: 'b', kind: 'root' }]);
  await page.goto(`${gw()}/admin`);
  const restores = page.getByRole('table', { name: 'restores' });
  await restores.getByRole('row').filter({ hasText: restore.body.id }).getByText('restore', { exact: true }).waitFor();
  for (const r of listed.body.restores.slice(0, 5)) await restores.getByRole('row').filter({ hasText: r.id }).getByText(r.kind, { exact: true }).waitFor();
  const replicas = page.getByRole('region', { name: 'replica status' });
  // The shared platform has one database host (no standbys) and replica zone b.
  expect(replication.body.database).toBeNull();
  await replicas.getByText('Database: one host, no standbys.').waitFor();
  await replicas.getByText('Replica zones: b (root)').waitFor();
  // Not a platform admin (the member just added): no restores or replica data from the API.
  expect((await api('GET', '/api/v1/restores', { token: made! })).status).toBe(403);
  expect((await api('GET', '/api/v1/admin/replicas', { token: made! })).status).toBe(403);
});

browserTest('runs across repositories: the Runs page lists recent runs of every repository with its name, filtered by status and event in the URL', async () => {
  const token = platformInfo().adminToken;
  await page.goto(`${gw()}/`);
  await page.getByRole('banner').getByRole('link', { name: 'Runs', exact: true }).click();
  await page.getByRole('heading', { name: 'Runs' }).waitFor();
  const made = page.locator(`a[href="/runs/${encodeURIComponent(madeRun)}"]`);
  const cancelled = page.locator(`a[href="/runs/${encodeURIComponent(cancelledRun)}"]`);
  await made.waitFor();
  await cancelled.waitFor();
  await page.locator('tr', { has: made }).getByRole('link', { name: `dotgit/${madeRepo}` }).waitFor();
  await page.getByLabel('status').selectOption('success');
  await page.waitForURL((u) => u.search === '?status=success');
  // The filtered answer replaces the list (the address changes first).
  await cancelled.waitFor({ state: 'detached' });
  await made.waitFor();
  await page.getByLabel('event').selectOption('manual');
  await page.waitForURL((u) => u.search === '?status=success&event=manual');
  await page.getByText('No runs.').waitFor();
  // The API behind it: the same filters; signed in only; a bad limit is a 400.
  const ids = (q: string) => api('GET', `/api/v1/runs${q}`, { token }).then((r) => (r.body.runs as Array<{ id: string }>).map((x) => x.id));
  expect(await ids('?status=cancelled')).toContain(cancelledRun);
  expect(await ids('?status=cancelled')).not.toContain(madeRun);
  expect(await ids('?event=push&ref=refs/heads/main')).toEqual(expect.arrayContaining([madeRun, cancelledRun]));
  expect((await api('GET', '/api/v1/runs')).status).toBe(401);
  expect((await api('GET', '/api/v1/runs?limit=0', { token })).status).toBe(400);
});

browserTest('a webhook delivery is sent again from its deliveries page: the same body and signature reach a real receiver under a new delivery id', async () => {
  const token = platformInfo().adminToken;
  const received: Array<{ headers: http.IncomingHttpHeaders; body: string }> = [];
  const receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.end('ok');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  try {
    const name = uniqueName('hook');
    expect((await api('POST', '/api/v1/repos', { token, body: { owner: 'dotgit', name, visibility: 'private' } })).status).toBe(201);
    const hook = await api('POST', `/api/v1/repos/dotgit/${name}/webhooks`, { token, body: { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, secret: 'hook-secret', events: ['push'] } });
    expect(hook.status).toBe(201);
    // A push without a pipeline file: a push event, no run.
    expect((await git(['push', cloneUrl('dotgit', name, token), 'main'], await localRepo({ 'README.md': 'hello\n' }))).code).toBe(0);
    const until = async (n: number) => {
      for (const end = Date.now() + 60_000; received.length < n && Date.now() < end; ) await new Promise((r) => setTimeout(r, 100));
      expect(received.length).toBe(n);
    };
    await until(1);
    await page.goto(`${gw()}/dotgit/${name}/settings`);
    await page.getByRole('button', { name: 'deliveries' }).click();
    await page.locator('.deliveries li', { hasText: 'push' }).waitFor();
    await page.getByRole('button', { name: 'Redeliver' }).click();
    await page.getByText(/sent again/).waitFor();
    await until(2);
    const [first, again] = received;
    expect(again.body).toBe(first.body);
    expect(again.headers['x-github-event']).toBe('push');
    expect(again.headers['x-hub-signature-256']).toBe(`sha256=${createHmac('sha256', 'hook-secret').update(first.body).digest('hex')}`);
    expect(again.headers['x-github-delivery']).not.toBe(first.headers['x-github-delivery']);
    // Both deliveries are in the log, the second under its own id.
    for (const end = Date.now() + 20_000; Date.now() < end; await new Promise((r) => setTimeout(r, 200))) {
      const log = await api('GET', `/api/v1/repos/dotgit/${name}/webhooks/${hook.body.id}/deliveries`, { token });
      if (new Set((log.body.deliveries as Array<{ deliveryId: string }>).map((d) => d.deliveryId)).size === 2) break;
    }
    const ids = (await api('GET', `/api/v1/repos/dotgit/${name}/webhooks/${hook.body.id}/deliveries`, { token })).body.deliveries.map((d: { deliveryId: string }) => d.deliveryId);
    expect(new Set(ids)).toEqual(new Set([first.headers['x-github-delivery'], again.headers['x-github-delivery']]));
    const redeliver = (delivery: string, as = token) => api('POST', `/api/v1/repos/dotgit/${name}/webhooks/${hook.body.id}/deliveries/${delivery}/redeliver`, { token: as, body: {} });
    expect((await redeliver('00000000-0000-4000-8000-000000000000')).status).toBe(404);
    expect((await redeliver('not-a-delivery')).status).toBe(400);
    // Another tenant's admin: not found (nothing about the repository leaks); nothing was sent.
    expect((await redeliver(String(first.headers['x-github-delivery']), (await createTenantWithAdmin()).token)).status).toBe(404);
    expect(received.length).toBe(2);
  } finally {
    receiver.close();
  }
});

browserTest('on a phone (390x844) the repository list and the run page fit the width, the job graph stacked', async () => {
  const phone = await context.newPage();
  try {
    await phone.setViewportSize({ width: 390, height: 844 });
    const overflow = () => phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    await phone.goto(`${gw()}/`);
    const repoLink = phone.getByRole('link', { name: `dotgit/${madeRepo}` });
    await repoLink.waitFor();
    expect(await overflow()).toBeLessThanOrEqual(0);
    const create = await phone.getByRole('button', { name: 'Create' }).boundingBox();
    expect(create!.x + create!.width).toBeLessThanOrEqual(390);
    await repoLink.click();
    await phone.locator(`a[href="/runs/${encodeURIComponent(madeRun)}"]`).waitFor();
    expect(await overflow()).toBeLessThanOrEqual(0);
    await phone.goto(`${gw()}/runs/${encodeURIComponent(cancelledRun)}`);
    await phone.locator('path.edge[data-from="wait"][data-to="after"]').waitFor({ state: 'attached' });
    expect(await overflow()).toBeLessThanOrEqual(0);
    // Stacked: the job that needs the other is below it, not beside it; the log is on screen and fits.
    const wait = (await phone.locator('.job-node[data-job="wait"]').boundingBox())!;
    const after = (await phone.locator('.job-node[data-job="after"]').boundingBox())!;
    expect(after.y).toBeGreaterThanOrEqual(wait.y + wait.height);
    const log = (await phone.locator('.log-box').boundingBox())!;
    expect(log.x + log.width).toBeLessThanOrEqual(390);
    await phone.locator('.log-box').getByText('started', { exact: true }).first().waitFor();
  } finally {
    await phone.close();
  }
});

browserTest('keyboard only: Tab follows the page order with a visible focus ring, Enter opens a link, Enter and Space press buttons and checkboxes', async () => {
  /** Tabs until `match` has focus (at most `max` presses); answers what had focus on the way. */
  const tabTo = async (match: (el: { tag: string; type: string | null; text: string }) => boolean, max = 40) => {
    const seen: string[] = [];
    for (let i = 0; i < max; i++) {
      await page.keyboard.press('Tab');
      const el = await page.evaluate(() => {
        const a = document.activeElement as HTMLElement;
        const s = getComputedStyle(a);
        return { tag: a.tagName.toLowerCase(), type: a.getAttribute('type'), text: (a.getAttribute('aria-label') ?? a.textContent ?? '').trim().slice(0, 60), outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0 };
      });
      // Every stop shows where focus is.
      expect({ ...el, outline: el.outline }).toEqual({ ...el, outline: true });
      seen.push(`${el.tag}:${el.text}`);
      if (match(el)) return seen;
    }
    throw new Error(`not reached by Tab: ${seen.join(' | ')}`);
  };
  // The repository list: the header first (brand, Repositories, Runs, Tokens, Admin, Sign out), then the list, then the form.
  await page.goto(`${gw()}/`);
  await page.getByRole('link', { name: `dotgit/${madeRepo}` }).waitFor();
  const order = await tabTo((el) => el.tag === 'button' && el.text === 'Create', 200);
  const at = (s: string) => order.indexOf(s);
  expect(at('a:dotgit')).toBe(0);
  expect(at('a:Repositories')).toBeLessThan(at('a:Runs'));
  expect(at('button:Sign out')).toBeLessThan(at(`a:dotgit/${madeRepo}`));
  expect(at(`a:dotgit/${madeRepo}`)).toBeLessThan(order.findIndex((s) => s.startsWith('input:')));
  // Back to the repository link and Enter opens it.
  await page.goto(`${gw()}/`);
  await page.getByRole('link', { name: `dotgit/${madeRepo}` }).waitFor();
  await tabTo((el) => el.tag === 'a' && el.text === `dotgit/${madeRepo}`, 200);
  await page.keyboard.press('Enter');
  await page.waitForURL(`${gw()}/dotgit/${madeRepo}`);

  // The run page: Enter on a step shows only its log; Space turns follow off; the log box takes focus.
  await page.goto(`${gw()}/runs/${encodeURIComponent(madeRun)}`);
  await page.waitForFunction((n) => Number(document.querySelector('.log-bar .muted')?.textContent?.replace(/\D/g, '')) >= n, TICKS + 3 + LONG);
  await tabTo((el) => el.tag === 'button' && el.text === 'slow');
  await page.keyboard.press('Enter');
  await page.locator('.steps li.selected', { hasText: 'slow' }).waitFor();
  await page.keyboard.press('Space');
  expect(await page.locator('.steps li.selected').count()).toBe(0);
  const follow = page.getByRole('checkbox', { name: 'follow' });
  const wasFollowing = await follow.isChecked();
  await tabTo((el) => el.tag === 'input' && el.type === 'checkbox');
  await page.keyboard.press('Space');
  expect(await follow.isChecked()).toBe(!wasFollowing);
  // Onward to the log itself, which scrolls by keyboard once focused: Home shows line 1.
  await tabTo((el) => el.tag === 'div' && el.text === 'log');
  await page.keyboard.press('Home');
  await page.locator('.log-box').getByText('tick 1', { exact: true }).waitFor();
});

browserTest('cookie-authenticated writes: refused cross-origin and without the CSRF token (403), accepted from the console with it', async () => {
  const cookie = (await sessionCookie())!;
  const headers = { cookie: `dotgit_session=${cookie.value}`, 'content-type': 'application/json' };
  const me = await fetch(`${gw()}/console/session`, { headers });
  expect(me.status).toBe(200);
  const { csrf } = await me.json();
  const body = (name: string) => JSON.stringify({ owner: 'dotgit', name, visibility: 'private' });

  const noToken = await fetch(`${gw()}/api/v1/repos`, { method: 'POST', headers, body: body(uniqueName('csrf')) });
  expect(noToken.status).toBe(403);
  expect((await noToken.json()).error.message).toMatch(/x-csrf-token/);
  const otherOrigin = await fetch(`${gw()}/api/v1/repos`, { method: 'POST', headers: { ...headers, 'x-csrf-token': csrf, origin: 'http://127.0.0.1:1' }, body: body(uniqueName('csrf')) });
  expect(otherOrigin.status).toBe(403);
  const ok = await fetch(`${gw()}/api/v1/repos`, { method: 'POST', headers: { ...headers, 'x-csrf-token': csrf, origin: gw() }, body: body(uniqueName('csrf')) });
  expect(ok.status).toBe(201);

  // In the browser: a page of another origin on the same host (same-site, so the cookie is sent)
  // posts to the API; the gateway refuses it and nothing is made.
  const victim = uniqueName('xsite');
  const server = http.createServer((_req, res) => {
    res.setHeader('content-type', 'text/html');
    res.end(`<!doctype html><script>
      fetch(${JSON.stringify(`${gw()}/api/v1/repos`)}, { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: ${JSON.stringify(body(victim))} })
        .then(() => { document.title = 'sent'; }, () => { document.title = 'sent'; });
    </script>`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const attacker = await context.newPage();
    const refused = attacker.waitForResponse((r) => r.url() === `${gw()}/api/v1/repos`);
    await attacker.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    expect((await refused).status()).toBe(403);
    await attacker.close();
  } finally {
    server.close();
  }
  expect((await api('GET', `/api/v1/repos/dotgit/${victim}`, { token: platformInfo().adminToken })).status).toBe(404);
});

browserTest('without the cookie: 401 from the session endpoint and the API; after sign-out the old cookie is 401 too', async () => {
  expect((await fetch(`${gw()}/console/session`)).status).toBe(401);
  expect((await fetch(`${gw()}/api/v1/tokens`)).status).toBe(401);
  const cookie = (await sessionCookie())!;
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to dotgit' }).waitFor();
  const stale = await fetch(`${gw()}/api/v1/tokens`, { headers: { cookie: `dotgit_session=${cookie.value}` } });
  expect(stale.status).toBe(401);
  // Deep links still work: unsigned, they land on sign-in; an API token signs in again.
  await page.goto(`${gw()}/runs/nope`);
  await page.getByLabel('API token').fill(platformInfo().adminToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Repositories' }).waitFor();
});

browserTest('signed in as another tenant, the first tenant\'s repository and run are not found', async () => {
  const other = await createTenantWithAdmin();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('API token').fill(other.token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Repositories' }).waitFor();
  expect(await page.getByRole('link', { name: `dotgit/${madeRepo}` }).count()).toBe(0);
  await page.goto(`${gw()}/dotgit/${madeRepo}`);
  await page.getByText('No such repository (or you may not see it).').waitFor();
  await page.goto(`${gw()}/runs/${encodeURIComponent(madeRun)}`);
  await page.getByText('No such run (or you may not see it).').waitFor();
  // A tenant admin's admin page has users but no platform sections (restores, drills, replicas).
  await page.goto(`${gw()}/admin`);
  await page.getByRole('heading', { name: 'Add a user to a tenant' }).waitFor();
  expect(await page.getByRole('heading', { name: 'Restores and restore drills' }).count()).toBe(0);
  expect(await page.getByRole('region', { name: 'replica status' }).count()).toBe(0);
  // Runs across repositories: none of the first tenant's.
  await page.goto(`${gw()}/runs`);
  await page.getByText('No runs.').waitFor();
  expect((await api('GET', '/api/v1/runs', { token: other.token })).body.runs).toEqual([]);
  // Granted read on the repository, its runs are among theirs (the grant lives in the other tenant's data).
  const grant = await api('PUT', `/api/v1/repos/dotgit/${madeRepo}/collaborators/${other.username}`, { token: platformInfo().adminToken, body: { access: 'read' } });
  expect(grant.status).toBe(200);
  expect((await api('GET', '/api/v1/runs', { token: other.token })).body.runs.map((r: { id: string }) => r.id)).toEqual([madeRun]);
});
