/**
 * wrk (Debian package `wrk`), the HTTP load generator of the gateway benchmark: found on PATH, or
 * installed with apt-get when the bench runs as root. Nothing is added to package.json for it.
 */
import type { ProvisionLog } from '../infra/provision/log';
import { aptInstall } from '../infra/provision/apt';
import { findOnPath } from '../infra/provision/which';

const EXTRA_DIRS = ['/usr/bin', '/usr/local/bin'];

/**
 * Absolute path of wrk, installing it first when it is missing and we are root; undefined when it
 * cannot be had (not root, no apt-get, install failed): the caller then uses the Node load generator.
 */
export async function ensureWrk(log: ProvisionLog): Promise<string | undefined> {
  const found = findOnPath('wrk', EXTRA_DIRS);
  if (found) return found;
  if (process.env.BENCH_NO_INSTALL === '1') return undefined;
  log.info('wrk not found; installing the Debian package wrk');
  if (!(await aptInstall(['wrk'], log))) return undefined;
  return findOnPath('wrk', EXTRA_DIRS) ?? undefined;
}

/**
 * The wrk script: request headers from the environment (`BENCH_HEADER_1`, `BENCH_HEADER_2`, … as
 * `name: value`, so tokens stay out of the command line), non-2xx answers counted in every thread,
 * and one machine-readable result line (`BENCH_RESULT {json}`, latencies in microseconds) at the end.
 */
export const WRK_SCRIPT = `
local i = 1
while true do
  local h = os.getenv("BENCH_HEADER_" .. i)
  if not h then break end
  local name, value = h:match("^([^:]+):%s*(.*)$")
  wrk.headers[name] = value
  i = i + 1
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

non2xx = 0
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + (t:get("non2xx") or 0) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"durationUs":%d,"non2xx":%d,"socketErrors":%d,"timeouts":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}\\n',
    summary.requests, summary.duration, n, e.connect + e.read + e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
`;
