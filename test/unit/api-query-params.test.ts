import { InputError } from '../../core/errors';
import { queryParam } from '../../api/validation';

test('a query parameter is one string without control characters; otherwise a 400 naming it', () => {
  expect(queryParam({ job: 'build' }, 'job')).toBe('build');
  expect(queryParam({}, 'job')).toBeUndefined();
  expect(() => queryParam({ job: 'a\u0000b' }, 'job')).toThrow(new InputError('query parameter job must not contain control characters'));
  expect(() => queryParam({ step: 'x\u007f' }, 'step')).toThrow(/query parameter step must not contain control characters/);
  expect(() => queryParam({ job: ['a', 'b'] }, 'job')).toThrow(/query parameter job must be given once/);
});
