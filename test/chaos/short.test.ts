import { DRILLS, defineChaosSuite } from './drills';

// The short chaos suite, part of `npm test`: four faults on a platform of its own under a steady
// mix of pushes, API calls, runs and deploys (`npm run chaos` runs all seven, Redis away 15 s).
// Each test is one fault, then the invariants: every accepted push has exactly one run, every run
// and deploy ends, no deploy ran twice, git fsck clean, no orphan process.
defineChaosSuite('short', [DRILLS.workerKill, DRILLS.redisStop(5000), DRILLS.gitServerKillAfterRefUpdate, DRILLS.apiKillMidDeploy]);
