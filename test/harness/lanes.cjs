/**
 * `npm test` runs its suites in two jest processes at once (test/harness/run-lanes.cjs):
 *
 * - the **shared** lane: every suite that uses the one platform global setup starts (its gateway,
 *   api, workers, Temporal namespace), in band, because many of them kill, drain or count that
 *   platform's processes and workflows;
 * - the **solo** lane: suites that never touch that platform's services — pure logic, workflow tests
 *   on their own Temporal test server, and drills that start platforms, clusters or sandboxes of
 *   their own (some read the shared Postgres or Redis URL only to have a database to write to).
 *
 * On 2 cores most of a drill is waiting (failover timers, elections, sandboxes starting), so the two
 * lanes overlap well: the whole run takes about the longer lane instead of the sum.
 *
 * A suite belongs in the solo lane only if it neither stops nor counts anything of the shared
 * platform, and scopes any process or mount scan to its own data dir. New suites default to the
 * shared lane.
 */
// Regular expressions over a suite's path, usable both as jest's testRegex and its testPathIgnorePatterns.
const SOLO_LANE = [
  '/test/unit/.*\\.test\\.ts$',
  '/test/workflows/.*\\.test\\.ts$',
  '/test/chaos/short\\.test\\.ts$',
  '/test/integration/(postgres-ha|redis-sentinel|shard-router|shard-move|helm-chart|provision|object-store|sandbox|sandbox-runtime|sandbox-orphans)\\.test\\.ts$',
  '/test/e2e/(fleet|ha-platform|shards-3db|npm-start|tracing|object-store-s3)\\.test\\.ts$',
];

module.exports = { SOLO_LANE };
