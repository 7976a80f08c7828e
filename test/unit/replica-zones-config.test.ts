import { ConfigError, loadConfig } from '../../core/config';
import { fingerprintOf } from '../../core/replica-sync';
import { replicaPath } from '../../core/replica-zones';

// DOTGIT_REPLICA_ZONES: validated in the one config schema (JSON list or comma list); a bad value
// stops start-up with a message naming the problem.

const problem = (value: string) => {
  try {
    loadConfig({ DOTGIT_REPLICA_ZONES: value });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
};

test('unset or empty: no zones', () => {
  expect(loadConfig({}).replicaZones).toEqual([]);
  expect(loadConfig({ DOTGIT_REPLICA_ZONES: ' ' }).replicaZones).toEqual([]);
});

test('a JSON list and the same as a comma list', () => {
  const zones = [{ name: 'b', root: '/mnt/b' }, { name: 'c', url: 'http://127.0.0.1:9082' }];
  expect(loadConfig({ DOTGIT_REPLICA_ZONES: JSON.stringify(zones) }).replicaZones).toEqual(zones);
  expect(loadConfig({ DOTGIT_REPLICA_ZONES: 'b=/mnt/b, c=http://127.0.0.1:9082' }).replicaZones).toEqual(zones);
});

test('bad zones are refused with a reason', () => {
  expect(problem('[{"name":"b"')).toMatch(/DOTGIT_REPLICA_ZONES is not valid JSON/);
  expect(problem('b=relative/path')).toMatch(/absolute path/);
  expect(problem('b=/x,b=/y')).toMatch(/unique/);
  expect(problem('B_1=/x')).toMatch(/replicaZones/);
  expect(problem('[{"name":"b","root":"/x","url":"http://h"}]')).toMatch(/replicaZones/);
  expect(problem('c=ftp://host/x')).toMatch(/absolute path|http/);
});

test('replica paths are built from validated names only', () => {
  expect(replicaPath({ root: '/mnt/b' }, 'acme', 'web')).toBe('/mnt/b/acme/web.git');
  expect(() => replicaPath({ root: '/mnt/b' }, '..', 'web')).toThrow(/owner must match/);
});

test('the refs fingerprint does not depend on the order refs are listed in', () => {
  const a = { 'refs/heads/main': '1'.repeat(40), 'refs/tags/v1': '2'.repeat(40) };
  const b = { 'refs/tags/v1': '2'.repeat(40), 'refs/heads/main': '1'.repeat(40) };
  expect(fingerprintOf(a)).toBe(fingerprintOf(b));
  expect(fingerprintOf(a)).not.toBe(fingerprintOf({ ...a, 'refs/heads/x': '3'.repeat(40) }));
});
