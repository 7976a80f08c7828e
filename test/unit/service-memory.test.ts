import { GATEWAY_SEMI_SPACE_FLAG, SEMI_SPACE_FLAG, serviceMemoryEnv } from '../../infra/service-memory';

test('services get a small semi-space and two malloc arenas, added to what the user set', () => {
  expect(serviceMemoryEnv({})).toEqual({ NODE_OPTIONS: SEMI_SPACE_FLAG, MALLOC_ARENA_MAX: '2' });
  expect(serviceMemoryEnv({ NODE_OPTIONS: '--enable-source-maps' })).toEqual({ NODE_OPTIONS: `--enable-source-maps ${SEMI_SPACE_FLAG}`, MALLOC_ARENA_MAX: '2' });
});

test('the gateway gets a larger semi-space than the other services (ADR 0041)', () => {
  expect(serviceMemoryEnv({}, 'gateway')).toEqual({ NODE_OPTIONS: GATEWAY_SEMI_SPACE_FLAG, MALLOC_ARENA_MAX: '2' });
  for (const role of ['api', 'git-server', 'worker'] as const) expect(serviceMemoryEnv({}, role).NODE_OPTIONS).toBe(SEMI_SPACE_FLAG);
  expect(serviceMemoryEnv({ NODE_OPTIONS: '--max-semi-space-size=16' }, 'gateway').NODE_OPTIONS).toBe('--max-semi-space-size=16');
});

test("a user's own semi-space size and arena count win", () => {
  expect(serviceMemoryEnv({ NODE_OPTIONS: '--max-semi-space-size=16', MALLOC_ARENA_MAX: '8' })).toEqual({ NODE_OPTIONS: '--max-semi-space-size=16', MALLOC_ARENA_MAX: '8' });
});
