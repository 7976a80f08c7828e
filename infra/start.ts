import { writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from '../core/config';
import { startPlatform } from './platform';

// Written synchronously: the last lines must reach the terminal (or a pipe) before process.exit.
const say = (line: string) => writeSync(1, line + '\n');

const USAGE = 'usage: npm start [-- --observability] [--fleet] [--ha]';

/** The modes after `--` (CONTRACT "Extended surface"); a wrong one is a usage error (exit 2). */
function modes(): { observability: boolean; fleet: boolean; ha: boolean } {
  try {
    const { values } = parseArgs({ args: process.argv.slice(2), options: { observability: { type: 'boolean' }, fleet: { type: 'boolean' }, ha: { type: 'boolean' } }, strict: true, allowPositionals: false });
    return { observability: values.observability ?? false, fleet: values.fleet ?? false, ha: values.ha ?? false };
  } catch (err) {
    say(`dotgit: ${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}

/** `npm start`: the whole platform on its embedded defaults, until Ctrl-C or SIGTERM. */
async function main(): Promise<void> {
  const debug = process.env.LOG_LEVEL === 'debug' || process.env.LOG_LEVEL === 'trace';
  const provisionLog = { info: (m: string) => say(`dotgit: ${m}`), warn: (m: string) => say(`dotgit: warning: ${m}`), debug: (m: string) => debug && say(`dotgit: ${m}`) };
  const flags = modes();
  const config = loadConfig();
  const fleet = flags.fleet || config.fleet;
  const ha = flags.ha || config.ha;
  const started = Date.now();
  const platform = await startPlatform({ env: process.env, log: provisionLog, observability: flags.observability || config.observability, fleet, ha });
  const lines = [
    `gateway       ${platform.gatewayUrls.join('  ')}`,
    `api           ${platform.gatewayUrl}/api/v1`,
    `git           ${platform.gatewayUrl}/{owner}/{repo}.git`,
    `temporal ui   ${platform.temporalUiUrl ?? '(external Temporal at ' + platform.temporalAddress + ')'}`,
    `admin token   ${platform.adminToken}  (also in ${config.dataDir}/admin.token)`,
    `console       ${platform.consoleUrl}  (one-time sign-in link)`,
    `logs          ${config.dataDir}/logs/`,
    // The Temporal server's Prometheus endpoint, on its fixed port (TEMPORAL_METRICS_PORT; issue 14 item 3).
    ...(platform.temporalMetricsUrl ? [`metrics       ${platform.temporalMetricsUrl}  (the Temporal server's; every dotgit process serves its own /metrics)`] : []),
    ...(platform.prometheusUrl ? [`prometheus    ${platform.prometheusUrl}`] : []),
    ...(fleet ? [`fleet         ${fleetSummary(platform.instances)}  (${config.dataDir}/run/topology.json)`] : []),
    ...(platform.haPostgres ? [`postgres ha   patroni ${platform.haPostgres.members.map((m) => m.restUrl).join(' ')}  (GET <url>/primary: 200 on the leader)`] : []),
    `dotgit ready  (${((Date.now() - started) / 1000).toFixed(1)} s)`,
  ];
  say(lines.join('\n'));

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    say(`${signal}: stopping dotgit...`);
    platform.stop().then(
      () => {
        say('dotgit stopped');
        process.exit(0);
      },
      (err) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/** `gateway-1 gateway-2 | api-1 api-2 | …`: the fleet's service processes, by role. */
function fleetSummary(instances: Array<{ role: string; name: string }>): string {
  const byRole = new Map<string, string[]>();
  for (const i of instances) byRole.set(i.role, [...(byRole.get(i.role) ?? []), i.name]);
  return [...byRole.values()].map((names) => names.join(' ')).join(' | ');
}

main().catch((err) => {
  console.error(`dotgit failed to start: ${(err as Error).message}`);
  process.exit(1);
});
