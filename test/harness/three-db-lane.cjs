#!/usr/bin/env node
/**
 * The 3-database lane (issue 12's tests, ADR 0043 §4): existing e2e suites run again on a platform
 * whose 8 tenant shards are spread over two more embedded Postgres servers
 * (`DOTGIT_TEST_SHARD_DATABASES=3`: the platform's own database keeps only the global tables), so
 * every tenant's rows are on another database than its users and tokens.
 *
 * One in-band jest over SUITES with jest.config.cjs's global setup and teardown: a platform of this
 * lane's own (data dir `.test-data/run-<jest pid>`, free ports, its own Temporal dev server), never
 * the shared lane's. Meant to start beside `npm test`'s other lanes once the shared lane's platform
 * is up (every tool provisioned, dist/ built: two global setups provisioning at once would race).
 * Its environment is scrubbed of what run-lanes.cjs gives a lane on the shared platform:
 *
 * - `DOTGIT_TEST_PLATFORM_FILE` becomes `.test-data/platform-3db-<this pid>.json`: global setup
 *   writes that, so neither lane reads the other's platform;
 * - `DOTGIT_TEST_LANE` is removed: jest.config.cjs then runs every suite it is given, with global
 *   setup and teardown (the `shared` value would select the shared lane's suites, `solo` none of the
 *   platform);
 * - `DOTGIT_TEST_SOLO_DONE_FILE` and `DOTGIT_TEST_RUNNER_PID` are removed: this lane's teardown
 *   waits for nobody.
 *
 * Exit code: jest's (1 when it was killed by a signal).
 *
 *   node test/harness/three-db-lane.cjs
 */
'use strict';
const { spawn } = require('node:child_process');
const { mkdirSync } = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
/** The suites that read or write tenant-owned rows through the platform (ADR 0043 §4 lists what each covers). */
const SUITES = ['push-to-pipeline', 'deploys', 'backup', 'secrets', 'audit'].map((s) => path.join('test', 'e2e', `${s}.test.ts`));

function main() {
  const started = Date.now();
  mkdirSync(path.join(root, '.test-data'), { recursive: true });
  const env = { ...process.env, DOTGIT_TEST_SHARD_DATABASES: '3', DOTGIT_TEST_PLATFORM_FILE: path.join(root, '.test-data', `platform-3db-${process.pid}.json`) };
  delete env.DOTGIT_TEST_LANE;
  delete env.DOTGIT_TEST_SOLO_DONE_FILE;
  delete env.DOTGIT_TEST_RUNNER_PID;
  const child = spawn(process.execPath, [require.resolve('jest/bin/jest'), '--runInBand', '--runTestsByPath', ...SUITES], { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit'] });
  // The runner stopping this lane stops its jest too (whose teardown stops the platform).
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => {
    const exit = code ?? (signal ? 1 : 0);
    console.log(`3-database lane: jest exit ${exit}, ${((Date.now() - started) / 60000).toFixed(1)} min`);
    process.exit(exit);
  });
}

main();
