import { rmSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { CHROMIUM_FLAGS, ensureChromium, freshUserDataDir } from '../../infra/provision/chromium';
import { platformInfo } from '../harness/platform-info';
import { createPrivateRepo, createTenantWithAdmin, waitForRun } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';

// Issue 14 item 6, in a real headless Chromium: the Temporal Web UI link the platform prints opens
// namespace `dotgit`; filtered by the run's repository (DotgitRepo), a failed pipeline's workflow is
// listed as Failed, and its page shows the run's failure message. Visibility agrees: the run is
// found by ExecutionStatus="Failed" with DotgitStatus="failure".

const info = platformInfo();
let context: BrowserContext;
let page: Page;
let userDataDir: string;
let connection: Connection;
let client: Client;

beforeAll(async () => {
  const executablePath = await ensureChromium({ info: () => undefined, warn: (m) => console.warn(m), debug: () => undefined });
  userDataDir = freshUserDataDir();
  context = await chromium.launchPersistentContext(userDataDir, { executablePath, headless: true, args: CHROMIUM_FLAGS.filter((f) => f !== '--headless') });
  page = context.pages()[0] ?? (await context.newPage());
  connection = await Connection.connect({ address: info.temporalAddress });
  client = new Client({ connection, namespace: info.namespace });
});

afterAll(async () => {
  await context?.close();
  await connection?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

// What the page showed when an assertion failed, kept beside the platform's data.
afterEach(async () => {
  const state = (expect as unknown as { getState(): { currentTestName?: string; assertionCalls: number; numPassingAsserts: number } }).getState();
  if (page && state.assertionCalls !== state.numPassingAsserts) {
    const file = path.join(info.dataDir, 'screenshots', `${(state.currentTestName ?? 'test').replace(/[^A-Za-z0-9]+/g, '-')}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => undefined);
    console.warn(`screenshot: ${file}`);
  }
});

test('a failed run is a Failed workflow in the Web UI, found by its repository, with its failure message', async () => {
  // The link npm start prints (`temporal ui …`) opens the namespace's workflow list.
  expect(info.temporalUiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/namespaces\/dotgit\/workflows$/);
  expect(info.namespace).toBe('dotgit');

  const owner = await createTenantWithAdmin();
  const repo = await createPrivateRepo(owner, 'ui');
  const work = await localRepo({ '.dotgit/pipeline.yml': 'jobs:\n  broken:\n    steps:\n      - name: fails\n        run: exit 3\n' });
  const push = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  expect(push.code).toBe(0);
  const [runId] = runIdsFrom(push.stderr);
  expect((await waitForRun(runId, owner.token)).status).toBe('failure');

  // The workflow execution failed (the run is recorded first, then the execution ends): its message.
  const failure = await client.workflow
    .getHandle(runId)
    .result()
    .then(
      () => undefined,
      (err: unknown) => (err instanceof WorkflowFailedError ? err.cause?.message : undefined),
    );
  expect(failure).toEqual(expect.any(String));

  // Visibility: ExecutionStatus and DotgitStatus agree (the UI's filters are these queries).
  const repoQuery = `DotgitRepo="${owner.tenant}/${repo}"`;
  const found: string[] = [];
  for await (const w of client.workflow.list({ query: `${repoQuery} AND ExecutionStatus="Failed" AND DotgitStatus="failure"` })) found.push(w.workflowId);
  expect(found).toEqual([runId]);

  // The Web UI, filtered by the repository as a user would: the run's row says Failed.
  await page.goto(`${info.temporalUiUrl}?query=${encodeURIComponent(repoQuery)}`);
  const row = page.locator('tr', { hasText: runId }).first();
  await row.waitFor({ timeout: 30_000 });
  await expect(row.innerText()).resolves.toMatch(/\bfailed\b/i);
  // Only this repository's runs are listed.
  await expect(page.locator('tr', { hasText: 'pipeline' }).count()).resolves.toBe(1);

  // Its page: status Failed and the run's failure message.
  await row.getByRole('link').filter({ hasText: runId }).first().click();
  await page.getByText(failure!, { exact: false }).first().waitFor({ timeout: 30_000 });
  await expect(page.locator("body").innerText()).resolves.toMatch(/\bfailed\b/i);
});
