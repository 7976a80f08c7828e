/**
 * Runs bench/caches.ts alone and rewrites its section of BENCHMARKS.md:
 * `node --import tsx bench/caches-main.ts` (BENCH_CACHE_FILES, BENCH_CACHE_ROUNDS).
 */
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../infra/root';
import { replaceCachesSection, runCachesBench } from './caches';

const progress = (m: string) => console.error(`[bench] ${m}`);
runCachesBench(progress)
  .then(async (section) => {
    const file = path.join(ROOT, 'BENCHMARKS.md');
    const before = existsSync(file) ? await fs.readFile(file, 'utf8') : '# Benchmarks\n';
    await fs.writeFile(file, replaceCachesSection(before, section));
    console.log(section);
    process.exit(0);
  })
  .catch((err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  });
