import { ConfigError, loadConfig } from '../../core/config';

// DOTGIT_REPLICA_NODES (ADR 0014): how many other storage nodes get a replica of each new
// repository; unset means none (today's behaviour), a bad value stops start-up with its reason.

test('unset: no replica nodes; a count is taken as given', () => {
  expect(loadConfig({}).replicaNodes).toBe(0);
  expect(loadConfig({ DOTGIT_REPLICA_NODES: '2' }).replicaNodes).toBe(2);
});

test.each(['-1', '1.5', 'two', '9'])('%s is refused', (value) => {
  expect(() => loadConfig({ DOTGIT_REPLICA_NODES: value })).toThrow(ConfigError);
  expect(() => loadConfig({ DOTGIT_REPLICA_NODES: value })).toThrow(/replicaNodes: /);
});

test('out of range: the message says the range', () => {
  expect(() => loadConfig({ DOTGIT_REPLICA_NODES: '9' })).toThrow(/DOTGIT_REPLICA_NODES must be 0\.\.8/);
});
