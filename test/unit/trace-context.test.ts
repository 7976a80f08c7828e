import { trace } from '@opentelemetry/api';
import { contextFrom, startServerSpan, startTracing, stopTracing } from '../../core/tracing';

// The traceparent a traced process reads and writes (core/tracing.ts parses and formats it itself,
// off the propagator's path): a span continues a valid caller's trace and names itself as the next
// hop's parent; anything the W3C format refuses starts a new trace.

const INCOMING = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

beforeAll(() => {
  // An endpoint nothing listens on: spans are made, the batch export (never flushed here) would fail.
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = 'http://127.0.0.1:9';
  expect(startTracing('unit')).toBe(true);
});
afterAll(async () => {
  delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  await stopTracing();
});

test('a server span continues the caller\'s trace: same trace id, the caller\'s span as parent, its own id in the next traceparent', () => {
  const s = startServerSpan('unit', INCOMING)!;
  const [version, traceId, spanId, flags] = s.traceparent.split('-');
  expect([version, traceId, flags]).toEqual(['00', '4bf92f3577b34da6a3ce929d0e0e4736', '01']);
  expect(spanId).toBe(s.span.spanContext().spanId);
  expect(spanId).not.toBe('00f067aa0ba902b7');
  // The SDK's span (sdk-trace-base 1.x) records its parent's id.
  expect((s.span as unknown as { parentSpanId?: string }).parentSpanId).toBe('00f067aa0ba902b7');
  s.end(200);
});

test('the caller\'s sampled flag is kept: an unsampled caller gets an unsampled child', () => {
  const s = startServerSpan('unit', INCOMING.replace(/-01$/, '-00'))!;
  expect(s.traceparent.endsWith('-00')).toBe(true);
  expect(s.traceparent.split('-')[1]).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  s.end(200);
});

test.each([
  ['malformed', 'not-a-traceparent'],
  ['an all-zero trace id', '00-00000000000000000000000000000000-00f067aa0ba902b7-01'],
  ['an all-zero parent id', '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01'],
  ['version ff', 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'],
  ['version 00 with extra fields', `${INCOMING}-extra`],
  ['upper-case hex', INCOMING.toUpperCase()],
])('%s: no parent, a new trace', (_what, header) => {
  expect(trace.getSpanContext(contextFrom(header))).toBeUndefined();
  const s = startServerSpan('unit', header)!;
  expect(s.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  expect(s.traceparent.split('-')[1]).not.toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  s.end(200);
});

test('a later version with extra fields is read by its version-00 prefix', () => {
  expect(trace.getSpanContext(contextFrom(`01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future`))).toMatchObject({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', isRemote: true });
});
