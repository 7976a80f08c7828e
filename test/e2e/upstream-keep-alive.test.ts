import http from 'node:http';
import { GATEWAY_UPSTREAM_IDLE_MS, UPSTREAM_KEEP_ALIVE_MS } from '../../core/keep-alive';
import { platformInfo } from '../harness/platform-info';

// The gateway's upstreams keep idle kept-alive connections longer than the gateway pools them
// (core/keep-alive.ts): with Node's default 5 s, a push sent on a pooled connection the git-server
// was closing at that moment failed with a reset, answered 502 (CI, the fleet suite's 30 pushes).

async function keepAliveOf(port: number): Promise<string | undefined> {
  const agent = new http.Agent({ keepAlive: true });
  try {
    return await new Promise((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/healthz', agent }, (res) => {
          res.resume();
          const value = res.headers['keep-alive'];
          resolve(Array.isArray(value) ? value.join(', ') : value);
        })
        .on('error', reject);
    });
  } finally {
    agent.destroy();
  }
}

test('the api and the git-server keep idle connections open longer than the gateway keeps them pooled', async () => {
  const p = platformInfo();
  const expected = `timeout=${UPSTREAM_KEEP_ALIVE_MS / 1000}`;
  expect({ api: await keepAliveOf(p.apiPort), gitServer: await keepAliveOf(p.gitPort) }).toEqual({ api: expected, gitServer: expected });
  expect(GATEWAY_UPSTREAM_IDLE_MS).toBeLessThan(UPSTREAM_KEEP_ALIVE_MS);
});
