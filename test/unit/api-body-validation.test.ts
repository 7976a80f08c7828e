import { z } from 'zod';
import { InputError } from '../../core/errors';
import { environmentField, fieldPath, flag, parseBody, refField, validName } from '../../api/validation';

// The one helper that turns a zod problem into the API's InputError: every message names the field.

const schema = z.strictObject({ name: validName('name'), on: flag, list: z.array(z.string()).max(2).optional(), nested: z.strictObject({ ref: refField }).optional() });

function messageOf(body: unknown): string {
  try {
    parseBody(schema, body);
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return (err as Error).message;
  }
  throw new Error('no error');
}

test('field paths read as a person writes them', () => {
  expect(fieldPath([])).toBe('body');
  expect(fieldPath(['pushers', 1])).toBe('pushers[1]');
  expect(fieldPath(['a', 'b', 0, 'c'])).toBe('a.b[0].c');
});

test('a body that is not an object is named as the body', () => {
  expect(messageOf([])).toBe('body must be a JSON object, not an array');
  expect(messageOf([{ name: 'x' }])).toBe('body must be a JSON object, not an array');
  expect(messageOf('x')).toBe('body must be a JSON object, not a string');
  expect(messageOf(42)).toBe('body must be a JSON object, not a number');
  expect(messageOf(null)).toBe('body must be a JSON object, not null');
});

test('wrong types, missing and unknown fields name the field', () => {
  expect(messageOf({ name: 'ok', on: 'yes' })).toBe('on must be true or false');
  expect(messageOf({ name: 'ok', on: null })).toBe('on must be true or false');
  expect(messageOf({ on: true })).toMatch(/^name must match/);
  expect(messageOf({ name: 'ok', list: ['a', 7] })).toBe('list[1] must be a string');
  expect(messageOf({ name: 'ok', list: ['a', 'b', 'c'] })).toBe('list must have at most 2 items');
  expect(messageOf({ name: 'ok', nested: {} })).toBe('ref must be a branch, tag or commit id');
  expect(messageOf({ name: 'ok', nested: { ref: 'main', x: 1 } })).toBe('unknown field in nested: x');
  expect(messageOf({ name: 'ok', allowForcepush: true, b: 1 })).toBe('unknown fields: allowForcepush, b');
  // A prototype key in JSON is an own key: refused like any unknown field, never merged.
  expect(messageOf(JSON.parse('{"name": "ok", "__proto__": {"on": true}}'))).toBe('unknown field: __proto__');
});

test('good bodies come back typed, with defaults', () => {
  expect(parseBody(schema, { name: 'web' })).toEqual({ name: 'web', on: false });
  expect(parseBody(environmentField, 'staging')).toBe('staging');
  expect(() => parseBody(environmentField, '../prod')).toThrow(/environment must be an environment name/);
  expect(() => parseBody(refField, 'ma\u0000in')).toThrow(/control characters/);
});
