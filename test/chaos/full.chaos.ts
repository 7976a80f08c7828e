import { DRILLS, defineChaosSuite } from './drills';

// The full chaos suite (`npm run chaos`, jest.chaos.config.cjs): all seven faults of issue 10, one
// at a time, on a platform of its own under a steady mix of pushes, API calls, runs and deploys.
defineChaosSuite('full', [
  DRILLS.workerKill,
  DRILLS.temporalRestart,
  DRILLS.redisStop(15_000),
  DRILLS.postgresRestart,
  DRILLS.gatewayKillMidPush,
  DRILLS.gitServerKillAfterRefUpdate,
  DRILLS.apiKillMidDeploy,
]);
