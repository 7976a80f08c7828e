/** Jest: TypeScript through @swc/jest; one shared platform (Temporal, Postgres, Redis) per run. */
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
};
