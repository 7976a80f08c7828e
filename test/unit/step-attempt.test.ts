import { attemptNote, stepAttempt } from '../../activities/sandbox-activities';

// How a step's attempt number and its re-run line are chosen (issue 10): Temporal's re-runs of the
// step activity count on from the workflow's number; the line says why the step runs again.

test('the attempt number adds Temporal re-runs to the workflow number', () => {
  expect(stepAttempt({ attempt: 1 }, 1)).toBe(1);
  expect(stepAttempt({ attempt: 1 }, 2)).toBe(2);
  expect(stepAttempt({ attempt: 3 }, 2)).toBe(4);
});

test('a re-run after the step was left running says the worker was lost, naming the attempt and host', () => {
  expect(attemptNote(2, 2, { status: 'running', attempt: 1, host: 'sandbox-a' })).toBe('dotgit: attempt 2 after worker lost (attempt 1 was running on sandbox-a)');
  expect(attemptNote(2, 2, { status: 'queued', attempt: null, host: null })).toBe('dotgit: attempt 2 (the previous attempt failed before its command ran)');
  expect(attemptNote(3, 1, { status: 'failure', attempt: 2, host: 'h' })).toBe('dotgit: attempt 3');
  expect(attemptNote(1, 1, undefined)).toBeUndefined();
});
