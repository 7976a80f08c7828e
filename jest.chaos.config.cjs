/**
 * `npm run chaos`: the full chaos suite (test/chaos/*.chaos.ts). It starts a platform of its own,
 * so none of the shared platform's global setup; the short version (test/chaos/short.test.ts)
 * runs in `npm test` through jest.config.cjs.
 */
const base = require('./jest.config.cjs');

module.exports = {
  ...base,
  testMatch: ['<rootDir>/test/chaos/**/*.chaos.ts'],
  globalSetup: undefined,
  globalTeardown: undefined,
  testTimeout: 900000,
};
