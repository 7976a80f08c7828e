/**
 * `npm run test:unit`: the fast path for developers — tests of pure logic (test/unit), no platform
 * started, no global setup. `npm test` runs these too, beside the integration and e2e suites.
 */
const base = require('./jest.config.cjs');

module.exports = {
  ...base,
  roots: ['<rootDir>/test/unit'],
  globalSetup: undefined,
  globalTeardown: undefined,
};
