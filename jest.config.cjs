/**
 * Jest: TypeScript through @swc/jest; one shared platform (Temporal, Postgres, Redis) per run.
 * `DOTGIT_TEST_LANE` (set by test/harness/run-lanes.cjs, which `npm test` runs) picks half of the
 * suites: `shared` (global setup starts the platform) or `solo` (reads the shared lane's platform
 * file, starts nothing). Unset: every suite in one process, as `npx jest <file>` does.
 */
const { SOLO_LANE } = require('./test/harness/lanes.cjs');

const lane = process.env.DOTGIT_TEST_LANE;
if (lane !== undefined && lane !== 'shared' && lane !== 'solo') throw new Error(`DOTGIT_TEST_LANE must be shared or solo, not ${lane}`);

module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.(ts|js)$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } }] },
  // jose and cockatiel are ESM-only; compile them to CommonJS for jest like our own sources.
  transformIgnorePatterns: ['/node_modules/(?!(jose|cockatiel)/)'],
  moduleFileExtensions: ['ts', 'js', 'json'],
  globalSetup: '<rootDir>/test/harness/global-setup.ts',
  globalTeardown: '<rootDir>/test/harness/global-teardown.ts',
  testTimeout: 120000,
  watchman: false,
  // A test file that leaves a socket or timer open must not hang CI after every test has passed
  // (global teardown still stops the platform). Find leaks with `npx jest --detectOpenHandles`.
  forceExit: true,
  ...(lane === 'shared' ? { testPathIgnorePatterns: ['/node_modules/', ...SOLO_LANE] } : {}),
  ...(lane === 'solo' ? { testRegex: SOLO_LANE, testMatch: undefined, globalSetup: undefined, globalTeardown: undefined } : {}),
};
