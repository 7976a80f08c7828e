import { bodyRefusal } from '../../core/http';

// body-parser's refusals become CONTRACT error answers: our codes, messages naming the problem.

test('malformed JSON is "not valid JSON" with the parser\'s detail, code invalid_input (not body-parser\'s type)', () => {
  expect(bodyRefusal({ status: 400, type: 'entity.parse.failed', message: 'Unexpected end of JSON input' })).toEqual({
    status: 400,
    code: 'invalid_input',
    message: 'the request body is not valid JSON: Unexpected end of JSON input',
  });
});

test('sizes, charsets and encodings get stable codes', () => {
  expect(bodyRefusal({ status: 413, type: 'entity.too.large', limit: 1048576 })).toEqual({ status: 413, code: 'payload_too_large', message: 'the request body is larger than 1048576 bytes' });
  expect(bodyRefusal({ status: 415, type: 'charset.unsupported', message: 'unsupported charset "LATIN1"' })).toMatchObject({ status: 415, code: 'unsupported_media_type', message: expect.stringContaining('unsupported charset "LATIN1"') });
  expect(bodyRefusal({ status: 415, type: 'encoding.unsupported', message: 'unsupported content encoding "x"' })).toMatchObject({ status: 415, code: 'unsupported_media_type' });
  expect(bodyRefusal({ status: 400, message: 'incorrect header check' }, 'gzip')).toEqual({ status: 400, code: 'invalid_input', message: 'the request body could not be decoded as Content-Encoding gzip: incorrect header check' });
});

test('server errors and non-errors are left to the caller', () => {
  expect(bodyRefusal(undefined)).toBeUndefined();
  expect(bodyRefusal({ status: 500, type: 'stream.encoding.set' })).toBeUndefined();
  expect(bodyRefusal({ message: 'boom' })).toBeUndefined();
});
