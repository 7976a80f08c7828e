import { writeSync } from 'node:fs';
import { loadConfig } from '../core/config';
import { startPlatform } from './platform';

// Written synchronously: the last lines must reach the terminal (or a pipe) before process.exit.
const say = (line: string) => writeSync(1, line + '\n');

/** `npm start`: the whole platform on its embedded defaults, until Ctrl-C or SIGTERM. */
async function main(): Promise<void> {
  const debug = process.env.LOG_LEVEL === 'debug' || process.env.LOG_LEVEL === 'trace';
  const provisionLog = { info: (m: string) => say(`dotgit: ${m}`), warn: (m: string) => say(`dotgit: warning: ${m}`), debug: (m: string) => debug && say(`dotgit: ${m}`) };
  const config = loadConfig();
  const started = Date.now();
  const platform = await startPlatform({ env: process.env, log: provisionLog });
  const lines = [
    `gateway       ${platform.gatewayUrl}`,
    `api           ${platform.gatewayUrl}/api/v1`,
    `git           ${platform.gatewayUrl}/{owner}/{repo}.git`,
    `temporal ui   ${platform.temporalUiUrl ?? '(external Temporal at ' + platform.temporalAddress + ')'}`,
    `admin token   ${platform.adminToken}  (also in ${config.dataDir}/admin.token)`,
    `logs          ${config.dataDir}/logs/`,
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

main().catch((err) => {
  console.error(`dotgit failed to start: ${(err as Error).message}`);
  process.exit(1);
});
