import { ConfigError, loadConfig } from '../../core/config';

// DOTGIT_SANDBOX_CONCURRENCY: the worker's sandbox slots (steps at once), validated in the config schema.

test('a worker runs 8 steps at once by default; DOTGIT_SANDBOX_CONCURRENCY changes it', () => {
  expect(loadConfig({}).sandboxConcurrency).toBe(8);
  expect(loadConfig({ DOTGIT_SANDBOX_CONCURRENCY: '2' }).sandboxConcurrency).toBe(2);
});

test.each(['0', '65', '1.5', 'many', '-3'])('DOTGIT_SANDBOX_CONCURRENCY=%s is refused with a message naming it', (value) => {
  expect(() => loadConfig({ DOTGIT_SANDBOX_CONCURRENCY: value })).toThrow(ConfigError);
  expect(() => loadConfig({ DOTGIT_SANDBOX_CONCURRENCY: value })).toThrow(/sandboxConcurrency|DOTGIT_SANDBOX_CONCURRENCY/);
});
