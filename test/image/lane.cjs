#!/usr/bin/env node
/**
 * The image lane (ADR 0042): the image suites (test/image/*.image.ts) as a third process beside
 * `npm test`'s shared and solo lanes (test/harness/run-lanes.cjs), on the shared lane's platform.
 *
 *   1. At once: `npm run image -- --prepare` — the node base, node_modules and the Debian layers,
 *      the part of a cold build that needs neither dist/ nor runsc — while the shared lane's global
 *      setup builds dist/, provisions runsc and starts the platform.
 *   2. When the platform file (DOTGIT_TEST_PLATFORM_FILE) appears: jest with jest.image.config.cjs,
 *      minus its global setup and teardown (the shared lane owns the platform and its file). The
 *      suite's beforeAll builds the targets, which now only lays this machine's dist/ and runsc
 *      over the cached layers.
 *
 * Exit code: jest's, or 1 when the head start fails or the platform never comes up. Output lines
 * carry no prefix; run-lanes.cjs prefixes each lane's.
 *
 *   DOTGIT_TEST_PLATFORM_FILE=<file> [DOTGIT_TEST_RUNNER_PID=<pid>] [DOTGIT_TEST_SOLO_DONE_FILE=<file>] node test/image/lane.cjs
 *
 * Not DOTGIT_TEST_LANE: jest.config.cjs knows only the shared and solo lanes.
 */
'use strict';
const { spawn } = require('node:child_process');
const { existsSync } = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const platformFile = process.env.DOTGIT_TEST_PLATFORM_FILE;
const runnerPid = Number(process.env.DOTGIT_TEST_RUNNER_PID ?? 0);
/** The runner writes it when the shared lane ended without a platform (or once the lanes are done): stop waiting then. */
const soloDone = process.env.DOTGIT_TEST_SOLO_DONE_FILE;
/** Global setup on a cold machine provisions Postgres, Temporal, gVisor...: well within this. */
const PLATFORM_WAIT_MS = 45 * 60_000;

function run(args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

function alive(pid) {
  if (!pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function main() {
  if (!platformFile) throw new Error('DOTGIT_TEST_PLATFORM_FILE is not set: the image lane runs on the shared lane\'s platform (test/harness/run-lanes.cjs)');
  const started = Date.now();
  const seconds = () => ((Date.now() - started) / 1000).toFixed(0);
  const prepared = await run(['--import', 'tsx', path.join(root, 'infra', 'image', 'build.ts'), '--prepare', '--quiet']);
  if (prepared !== 0) return prepared;
  console.log(`image lane: head start done at ${seconds()} s; waiting for the platform`);
  while (!existsSync(platformFile)) {
    if (!alive(runnerPid) || (soloDone && existsSync(soloDone)) || Date.now() - started > PLATFORM_WAIT_MS) {
      console.error('image lane: the shared lane\'s platform never came up');
      return 1;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  console.log(`image lane: platform up at ${seconds()} s; running the image suites`);
  const config = { ...require(path.join(root, 'jest.image.config.cjs')), rootDir: root, globalSetup: undefined, globalTeardown: undefined };
  const code = await run([require.resolve('jest/bin/jest'), '--runInBand', '--config', JSON.stringify(config)]);
  console.log(`image lane: exit ${code} at ${seconds()} s`);
  return code;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err.stack ?? String(err));
    process.exit(1);
  },
);
