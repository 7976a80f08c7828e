#!/usr/bin/env node
/**
 * `npm test`'s jest step: the shared and solo lanes (test/harness/lanes.cjs) as two jest processes,
 * the image lane (test/image/lane.cjs, ADR 0042: the container image built and each role started)
 * as a third process on the shared lane's platform, and the 3db lane (test/harness/three-db-lane.cjs,
 * ADR 0043: the push, deploy, backup, secrets and audit suites on a platform of its own whose tenant
 * shards are on two more Postgres servers), started with the solo lane.
 *
 * The solo lane starts once the shared lane's global setup has written the platform file: by then
 * every tool is provisioned and the build is done (two processes provisioning the same tool at once
 * would race), and the solo suites that borrow the shared Postgres or Redis find them up. The shared
 * lane's global teardown waits for the solo lane to end before it stops the platform.
 *
 * Each line of output carries its lane; the exit code is non-zero if either lane failed.
 * With arguments (`npm test -- <pattern>`) it runs one plain in-band jest with them instead: a
 * pattern usually selects suites of one lane only, and the other would find none.
 */
const { spawn } = require('node:child_process');
const { existsSync, mkdirSync, rmSync, writeFileSync } = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');

const root = path.resolve(__dirname, '..', '..');
const runDir = path.join(root, '.test-data');
mkdirSync(runDir, { recursive: true });
const platformFile = path.join(runDir, `platform-lanes-${process.pid}.json`);
const soloDone = `${platformFile}.solo-done`;
rmSync(platformFile, { force: true });
rmSync(soloDone, { force: true });

const jestBin = require.resolve('jest/bin/jest');
const extraArgs = process.argv.slice(2);
if (extraArgs.length > 0) {
  const child = spawn(process.execPath, [jestBin, '--runInBand', ...extraArgs], { cwd: root, stdio: 'inherit' });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  return;
}

/** The environment without DOTGIT_TEST_LANE (jest.config.cjs refuses any value but shared or solo). */
function withoutLane(env) {
  const rest = { ...env };
  delete rest.DOTGIT_TEST_LANE;
  return rest;
}

function runLane(lane) {
  const laneEnv = { DOTGIT_TEST_PLATFORM_FILE: platformFile, DOTGIT_TEST_SOLO_DONE_FILE: soloDone, DOTGIT_TEST_RUNNER_PID: String(process.pid) };
  // The image lane is no jest lane of jest.config.cjs (which knows shared and solo): its own runner.
  const [args, env] =
    lane === 'image'
      ? [[path.join(root, 'test', 'image', 'lane.cjs')], { ...withoutLane(process.env), ...laneEnv }]
      : lane === '3db'
        ? [[path.join(root, 'test', 'harness', 'three-db-lane.cjs')], process.env] // it clears the lane variables itself
        : [[jestBin, '--runInBand'], { ...process.env, ...laneEnv, DOTGIT_TEST_LANE: lane }];
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env });
  for (const [stream, out] of [[child.stdout, process.stdout], [child.stderr, process.stderr]]) {
    readline.createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => out.write(`[${lane}] ${line}\n`));
  }
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))));
}

async function main() {
  const started = Date.now();
  let sharedEnded = false;
  const shared = runLane('shared').then((code) => ((sharedEnded = true), code));
  // At once: its head start (base layers, node_modules) needs no platform; it then waits for the file.
  const image = runLane('image');
  // Poll rather than watch: the file is written once, and a second's delay is nothing here.
  while (!existsSync(platformFile) && !sharedEnded) await new Promise((r) => setTimeout(r, 1000));
  let solo = 1;
  // Once every tool is provisioned (the platform is up), so the 3db lane's platform provisions nothing.
  let threeDb = Promise.resolve(1);
  if (existsSync(platformFile)) {
    threeDb = runLane('3db');
    solo = await runLane('solo');
  } else {
    process.stderr.write('[solo] not started: the shared lane ended before its platform came up\n');
    writeFileSync(soloDone, String(solo)); // tells the image lane to stop waiting for the platform
  }
  const imageCode = await image;
  // The shared lane's teardown stops the platform once this is written: after every lane using it
  // (the 3db lane has a platform of its own).
  writeFileSync(soloDone, String(solo));
  const threeDbCode = await threeDb;
  const sharedCode = await shared;
  rmSync(soloDone, { force: true });
  const minutes = ((Date.now() - started) / 60000).toFixed(1);
  process.stdout.write(`\nlanes: shared exit ${sharedCode}, solo exit ${solo}, image exit ${imageCode}, 3db exit ${threeDbCode}, ${minutes} min\n`);
  process.exit(sharedCode !== 0 || solo !== 0 || imageCode !== 0 || threeDbCode !== 0 ? 1 : 0);
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
