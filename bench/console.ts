/**
 * The web console's run-page benchmark (issue 18): against a running platform (BENCH_GATEWAY_URL,
 * BENCH_TOKEN: an admin token), pushes a pipeline whose step prints BENCH_LOG_LINES lines (default
 * 100,000), and in headless Chromium measures, BENCH_RUNS times (default 5): navigation → first log
 * line on screen for the finished run (whole stored log fetched), and the page's JS heap and DOM node
 * count after scrolling to the end; and, with the run page open on a running run, the delay from a
 * step printing a line (its own clock, `date +%s%3N`) to that line on screen (BENCH_LIVE_LINES lines,
 * default 10). Also the gzipped size of the JavaScript the run page loads.
 *
 *   BENCH_GATEWAY_URL=http://127.0.0.1:8080 BENCH_TOKEN=$(cat .data/admin.token) node --import tsx bench/console.ts
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { CHROMIUM_FLAGS, ensureChromium, freshUserDataDir } from '../infra/provision/chromium';

const gw = process.env.BENCH_GATEWAY_URL ?? 'http://127.0.0.1:8080';
const token = process.env.BENCH_TOKEN ?? readFileSync('.data/admin.token', 'utf8').trim();
const LINES = Number(process.env.BENCH_LOG_LINES ?? 100_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const LIVE = Number(process.env.BENCH_LIVE_LINES ?? 10);
const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };

/** A new repository whose one step runs `command`; answers the run its push started. */
async function pushRun(owner: string, name: string, command: string): Promise<string> {
  await fetch(`${gw}/api/v1/repos`, { method: 'POST', headers: auth, body: JSON.stringify({ owner, name, visibility: 'private' }) });
  const work = mkdtempSync(path.join(os.tmpdir(), 'bench-console-'));
  mkdirSync(path.join(work, '.dotgit'));
  writeFileSync(path.join(work, '.dotgit', 'pipeline.yml'), `jobs:\n  log:\n    steps:\n      - name: lines\n        run: ${JSON.stringify(command)}\n`);
  const env = { ...process.env, GIT_AUTHOR_NAME: 'b', GIT_AUTHOR_EMAIL: 'b@x', GIT_COMMITTER_NAME: 'b', GIT_COMMITTER_EMAIL: 'b@x' };
  for (const args of [['init', '-q', '-b', 'main'], ['add', '-A'], ['commit', '-qm', 'bench']]) execFileSync('git', args, { cwd: work, env, stdio: 'pipe' });
  const u = new URL(`${gw}/${owner}/${name}.git`);
  u.username = 'x';
  u.password = token;
  const out = execFileSync('git', ['push', u.toString(), 'main'], { cwd: work, env, stdio: 'pipe', encoding: 'utf8' });
  void out;
  rmSync(work, { recursive: true, force: true });
  const runs = await (await fetch(`${gw}/api/v1/repos/${owner}/${name}/runs`, { headers: auth })).json();
  return runs.runs[0].id as string;
}

async function main(): Promise<void> {
  const name = `bench-console-${Date.now()}`;
  const me = await (await fetch(`${gw}/console/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) })).json();
  const owner = me.tenant as string;
  const runId = await pushRun(owner, name, `seq -f 'line %g of a long log with some width to it' 1 ${LINES}`);
  for (;;) {
    const r = await (await fetch(`${gw}/api/v1/runs/${encodeURIComponent(runId)}`, { headers: auth })).json();
    if (['success', 'failure', 'cancelled'].includes(r.status)) break;
    await new Promise((res) => setTimeout(res, 500));
  }
  const executablePath = await ensureChromium({ info: console.log, warn: console.warn, debug: () => undefined });
  const dir = freshUserDataDir();
  const ctx = await chromium.launchPersistentContext(dir, { executablePath, headless: true, args: CHROMIUM_FLAGS.filter((f) => f !== '--headless') });
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  await page.goto(`${gw}/signin`);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Repositories' }).waitFor();
  const firstLine: number[] = [];
  const heap: number[] = [];
  const nodes: number[] = [];
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('Performance.enable');
  for (let i = 0; i < RUNS; i++) {
    await page.goto('about:blank');
    const t0 = Date.now();
    await page.goto(`${gw}/runs/${encodeURIComponent(runId)}`);
    await page.locator('.log-line').first().waitFor();
    firstLine.push(Date.now() - t0);
    await page.getByText(`${LINES.toLocaleString('en-US')} lines`).waitFor();
    await page.locator('.log-box').evaluate((el) => el.scrollTo(0, el.scrollHeight));
    await page.getByText(`line ${LINES} of`).waitFor();
    await cdp.send('HeapProfiler.collectGarbage');
    const m = (await cdp.send('Performance.getMetrics')).metrics;
    heap.push(m.find((x) => x.name === 'JSHeapUsedSize')!.value / 1024 / 1024);
    nodes.push(m.find((x) => x.name === 'Nodes')!.value);
  }
  // Live: a step that prints its own clock every 300 ms, watched from the run page as it runs.
  const live = await pushRun(owner, `live-${name}`, `for i in $(seq 1 ${LIVE}); do echo "t=$(date +%s%3N) n=$i"; sleep 0.3; done`);
  await page.goto(`${gw}/runs/${encodeURIComponent(live)}`);
  // A string, not a function: tsx's helpers (__name) do not exist in the page.
  const seen = (await page.evaluate(`new Promise((resolve) => {
    const delays = new Map();
    const check = () => {
      for (const el of document.querySelectorAll('.log-text')) {
        const m = /^t=(\\d+) n=(\\d+)$/.exec(el.textContent || '');
        if (m && !delays.has(Number(m[2]))) delays.set(Number(m[2]), Date.now() - Number(m[1]));
      }
      if (delays.size >= ${LIVE}) resolve([...delays.values()]);
    };
    new MutationObserver(check).observe(document.body, { childList: true, subtree: true, characterData: true });
    check();
  })`)) as number[];
  await ctx.close();
  rmSync(dir, { recursive: true, force: true });
  const assets = path.join(__dirname, '..', 'console', 'dist', 'assets');
  const js = readdirSync(assets).filter((f) => f.endsWith('.js'));
  const gz = js.reduce((n, f) => n + gzipSync(readFileSync(path.join(assets, f)), { level: 9 }).length, 0);
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  console.log(`run page, ${LINES.toLocaleString('en-US')}-line finished run, ${RUNS} runs:`);
  console.log(`  navigation -> first log line: median ${med(firstLine)} ms (min ${Math.min(...firstLine)}, max ${Math.max(...firstLine)})`);
  console.log(`  after scrolling to the end: JS heap median ${med(heap).toFixed(1)} MiB, DOM nodes median ${med(nodes)}`);
  const sorted = [...seen].sort((a, b) => a - b);
  console.log(`  live: step prints a line -> on screen: median ${med(seen)} ms, max ${sorted[sorted.length - 1]} ms (${seen.length} lines; page opened before they were printed)`);
  console.log(`  JavaScript loaded by every page (one bundle): ${gz} bytes gzipped`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
