import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../core/config';
import { newHostId, resolveHostId } from '../../core/host-id';

test('worker roles default to all three; a list is trimmed and deduplicated', () => {
  expect(loadConfig({}).workerRoles.sort()).toEqual(['orchestration', 'sandbox', 'storage']);
  expect(loadConfig({ DOTGIT_WORKER_ROLES: ' sandbox ,sandbox' }).workerRoles).toEqual(['sandbox']);
  expect(loadConfig({ DOTGIT_WORKER_ROLES: 'orchestration,storage' }).workerRoles).toEqual(['orchestration', 'storage']);
  // Beside a git-server: its node's disk activities only.
  expect(loadConfig({ DOTGIT_WORKER_ROLES: 'storage' }).workerRoles).toEqual(['storage']);
});

test('an unknown role, or orchestration without storage, is refused with the variable named', () => {
  expect(() => loadConfig({ DOTGIT_WORKER_ROLES: 'sandbox,gpu' })).toThrow(/DOTGIT_WORKER_ROLES lists orchestration, sandbox or storage/);
  expect(() => loadConfig({ DOTGIT_WORKER_ROLES: 'orchestration' })).toThrow(/DOTGIT_WORKER_ROLES: orchestration needs storage too/);
});

test('host id and drain period: defaults, and bad values named', () => {
  const c = loadConfig({});
  expect(c.hostId).toBeUndefined();
  expect(c.workerDrainSeconds).toBe(600);
  expect(loadConfig({ DOTGIT_HOST_ID: 'sbx-1', DOTGIT_WORKER_DRAIN_SECONDS: '5' })).toMatchObject({ hostId: 'sbx-1', workerDrainSeconds: 5 });
  expect(() => loadConfig({ DOTGIT_HOST_ID: 'a/b' })).toThrow(/DOTGIT_HOST_ID must be/);
  expect(() => loadConfig({ DOTGIT_WORKER_DRAIN_SECONDS: '-1' })).toThrow(/DOTGIT_WORKER_DRAIN_SECONDS must be/);
});

test('the host id is made once and kept in the data dir; a configured one wins', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hostid-'));
  const file = path.join(dir, 'host-id');
  const first = await resolveHostId(undefined, file);
  expect(first).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]*-[0-9a-f]{6}$/);
  expect(readFileSync(file, 'utf8').trim()).toBe(first);
  expect(await resolveHostId(undefined, file)).toBe(first);
  expect(await resolveHostId('given', file)).toBe('given');
  writeFileSync(file, 'not/valid\n');
  await expect(resolveHostId(undefined, file)).rejects.toThrow(/holds no valid host id/);
  expect(newHostId('-weird host!')).toMatch(/^weird-host--[0-9a-f]{6}$/);
});
