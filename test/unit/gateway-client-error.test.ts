import { describeClientError, type ParserError } from '../../gateway/client-error';

// What the gateway answers for a request Node's parser refuses (server 'clientError'): the errors
// below are shaped as llhttp reports them (code, reason, the raw bytes and the offset of the bad byte).

const parserError = (code: string, reason: string, raw?: string, at?: string): ParserError =>
  Object.assign(new Error(`Parse Error: ${reason}`), { code, reason, rawPacket: raw === undefined ? undefined : Buffer.from(raw, 'latin1'), bytesParsed: raw && at ? raw.indexOf(at) : undefined });

test('oversized headers are 431 naming the limit; a header timeout is 408', () => {
  expect(describeClientError(parserError('HPE_HEADER_OVERFLOW', 'Header overflow'), 16384)).toEqual({ status: 431, code: 'headers_too_large', message: 'the request headers are larger than 16384 bytes' });
  expect(describeClientError(Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), 16384).status).toBe(408);
});

test('Content-Length and Transfer-Encoding problems name the header and the parser reason', () => {
  const cl = describeClientError(parserError('HPE_INVALID_CONTENT_LENGTH', 'Invalid character in Content-Length'), 1);
  expect(cl).toMatchObject({ status: 400, code: 'bad_request' });
  expect(cl.message).toMatch(/Invalid character in Content-Length; Content-Length must be given once/);
  expect(describeClientError(parserError('HPE_INVALID_TRANSFER_ENCODING', 'Request has invalid `Transfer-Encoding`'), 1).message).toMatch(/Transfer-Encoding/);
  expect(describeClientError(parserError('HPE_INVALID_METHOD', 'Invalid method encountered'), 1)).toEqual({ status: 400, code: 'bad_request', message: 'malformed request: Invalid method encountered' });
});

test('a bad byte in a header is named with its header; in Idempotency-Key it is the gateway\'s usual key error', () => {
  const nul = 'GET / HTTP/1.1\r\nHost: x\r\nX-Evil: a\u0000b\r\n\r\n';
  expect(describeClientError(parserError('HPE_INVALID_HEADER_TOKEN', 'Invalid header value char', nul, '\u0000'), 1).message).toBe('malformed request header: X-Evil has byte 0x00, which header values may not contain');
  const space = 'GET / HTTP/1.1\r\nHost: x\r\nX Evil: v\r\n\r\n';
  expect(describeClientError(parserError('HPE_INVALID_HEADER_TOKEN', 'Invalid header token', space, ' Evil'), 1).message).toMatch(/header name "X "… has byte 0x20/);
  const del = 'POST / HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\u007fb\r\n\r\n';
  expect(describeClientError(parserError('HPE_INVALID_HEADER_TOKEN', 'Invalid header value char', del, '\u007f'), 1)).toEqual({
    status: 400,
    code: 'bad_idempotency_key',
    message: 'Idempotency-Key must be 1 to 255 printable ASCII characters',
  });
  // Without the raw bytes: still the parser's reason.
  expect(describeClientError(parserError('HPE_INVALID_HEADER_TOKEN', 'Invalid header token'), 1).message).toBe('malformed request header: Invalid header token');
});
