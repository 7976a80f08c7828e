/**
 * `npm run test:image`: builds the container images with buildah (infra/image/build.ts) and starts
 * every role from them with podman against the shared test platform (test/image/*.image.ts).
 * `npm test` runs the same suites as its image lane (test/image/lane.cjs, ADR 0042): a cold build
 * takes about 4 min (this machine's dist/ and runsc stand in for the Dockerfile's build stages), a
 * warm one under a minute.
 */
const base = require('./jest.config.cjs');

module.exports = {
  ...base,
  testMatch: ['<rootDir>/test/image/**/*.image.ts'],
};
