import v8 from 'node:v8';

/**
 * How far V8 lets the heap grow past what survived the last full collection before it starts the
 * next one (V8's `--heap-growing-percent`; unset, V8 picks about 10–100 % from recent GC pressure).
 *
 * A git-server is a small heap (~30 MiB live) that streams large packs: every 64 KiB socket read,
 * and every chunk read from the pack cache, is a fresh ArrayBuffer, and V8 counts those bytes
 * against the same limit. With V8's own factor a 23 MiB clone ran one to two full mark-compacts
 * on each process it passed through (measured with --trace-gc: 7–15 per 10 clones, 50–90 ms of
 * CPU per clone, most of it GC), so a node streaming a clone to another node (ADR 0014) doubled the
 * GC bill of a clone. At 300 % (a limit of four times the live heap, ~120 MiB) the same 10 clones
 * cost one mark-compact and ~25 ms of CPU each; the price is up to ~90 MiB more resident memory.
 */
export const HEAP_GROWING_PERCENT = 300;

/**
 * Sets the heap growing factor for this process. V8 reads the flag at each full collection when it
 * sizes the next limit, so setting it at start-up, after V8 started, takes effect.
 */
export function tuneHeapForStreaming(percent = HEAP_GROWING_PERCENT): void {
  v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
}
