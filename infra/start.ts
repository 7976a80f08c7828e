import { loadConfig } from '../core/config';
import { createLogger } from '../core/logger';
import { startPlatform } from './platform';

/** `npm start`: the whole platform on its embedded defaults, until Ctrl-C or SIGTERM. */
async function main(): Promise<void> {
  const log = createLogger('dotgit', process.env.LOG_LEVEL ?? 'info');
  const provisionLog = { info: (m: string) => log.info(m), warn: (m: string) => log.warn(m), debug: (m: string) => log.debug(m) };
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
  process.stdout.write(lines.join('\n') + '\n');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`${signal}: stopping dotgit...\n`);
    platform.stop().then(
      () => {
        process.stdout.write('dotgit stopped\n');
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
