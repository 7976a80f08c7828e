import { simulateDay } from '../../bench/scaling-sim';

// The autoscaling simulation behind docs/scaling.md: deterministic, and its rules behave as the
// document reads them.

test('a simulated day is replayed exactly (seeded) and counts every job of the day', () => {
  const a = simulateDay(10, 'backlog+busy');
  expect(simulateDay(10, 'backlog+busy')).toEqual(a);
  // 10 runs/min × 3 jobs × 1440 min, Poisson noise aside.
  expect(a.jobs).toBeGreaterThan(43_200 * 0.97);
  expect(a.jobs).toBeLessThan(43_200 * 1.03);
  expect(simulateDay(10, 'backlog+busy', 500, 7).jobs).not.toBe(a.jobs);
});

test('backlog alone keeps jobs waiting; backlog + busy slots starts them within a pod start', () => {
  const backlog = simulateDay(10, 'backlog');
  const both = simulateDay(10, 'backlog+busy');
  expect(backlog.waitP50).toBeGreaterThanOrEqual(60);
  expect(both.waitP50).toBe(0);
  expect(both.waitP99).toBeLessThanOrEqual(30);
  expect(both.podHours).toBeGreaterThan(backlog.podHours);
});

test('the pod ceiling holds (draining pods aside) and shows as waiting when demand exceeds it', () => {
  const capped = simulateDay(10, 'backlog+busy', 20);
  expect(capped.peakPods).toBeLessThanOrEqual(20 + 8);
  expect(capped.waitP99).toBeGreaterThan(simulateDay(10, 'backlog+busy', 500).waitP99);
});
