import type { Logger } from './logger';

/**
 * What the pool knows of one instance. `up`: its last `/healthz` answered 2xx (or nothing says
 * otherwise yet). `unhealthy`: it answers, but `/healthz` says it cannot serve (draining, a
 * dependency down) or answered too slowly. `down`: it could not be reached (connection refused,
 * reset, unreachable): taken out until a probe reaches it again.
 */
export type InstanceState = 'up' | 'unhealthy' | 'down';

export interface UpstreamInstance {
  /** Base URL (`http://host:port`). */
  readonly url: URL;
  state: InstanceState;
  /** Why it is not up (for logs and the all-down message). */
  reason?: string;
}

/**
 * Round robin from `cursor` over the instances not in `exclude`: the next `up` one; when none is
 * up, the next `unhealthy` one (Envoy's "panic" rule: when every instance's health check fails,
 * the cause is usually shared, e.g. Temporal or Postgres down, and a request may still work, or the
 * instance answers its own error, which beats a blanket 503); never a `down` one. Answers the
 * index, or -1 when nothing can be tried.
 */
export function pickIndex(states: readonly InstanceState[], cursor: number, exclude: (i: number) => boolean = () => false): number {
  const n = states.length;
  for (const wanted of ['up', 'unhealthy'] as const) {
    for (let k = 0; k < n; k++) {
      const i = (((cursor + k) % n) + n) % n;
      if (states[i] === wanted && !exclude(i)) return i;
    }
  }
  return -1;
}

/** How a probe of `/healthz` went: 2xx → up, another answer or no answer in time → unhealthy, no connection → down. */
export async function probeHealth(base: URL, timeoutMs: number): Promise<{ state: InstanceState; reason?: string }> {
  try {
    const res = await fetch(new URL('/healthz', base), { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    return res.ok ? { state: 'up' } : { state: 'unhealthy', reason: `/healthz answered ${res.status}` };
  } catch (err) {
    // A probe that connected but got no answer in time is a slow instance, not a gone one.
    if ((err as Error).name === 'TimeoutError') return { state: 'unhealthy', reason: `/healthz did not answer within ${timeoutMs} ms` };
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return { state: 'down', reason: cause?.code ?? cause?.message ?? (err as Error).message };
  }
}

export interface UpstreamPoolOptions {
  log?: Logger;
  /** Between active probes of every instance; default 2000 ms. */
  probeIntervalMs?: number;
  /** One probe's time limit; default 1500 ms. */
  probeTimeoutMs?: number;
  /**
   * Take out instances that refuse connections (`markDown`) and probe them back. Default true;
   * false for a fixed single URL that nothing would probe back (it is then always tried).
   */
  eject?: boolean;
  /** The probe (tests); default `probeHealth`. */
  probe?: (base: URL, timeoutMs: number) => Promise<{ state: InstanceState; reason?: string }>;
}

/**
 * The instances of one upstream (e.g. every api), for balancing (ADR 0014, "Balancing"): round
 * robin over the healthy ones, active `/healthz` probes every 2 s, and passive ejection of an
 * instance that refuses a connection until a probe reaches it again.
 */
export class UpstreamPool {
  readonly instances: UpstreamInstance[];
  private cursor = 0;
  private timer: NodeJS.Timeout | undefined;
  private probing: Promise<void> | undefined;
  private lastProbeAt = 0;
  private readonly o: Required<Omit<UpstreamPoolOptions, 'log'>> & { log?: Logger };

  constructor(
    readonly name: string,
    urls: readonly (string | URL)[],
    o: UpstreamPoolOptions = {},
  ) {
    if (urls.length === 0) throw new Error(`upstream ${name} needs at least one instance URL`);
    this.instances = urls.map((u) => ({ url: new URL(u), state: 'up' as InstanceState }));
    this.o = { probeIntervalMs: 2000, probeTimeoutMs: 1500, eject: true, probe: probeHealth, ...o };
  }

  /** A pool of one fixed URL that is never taken out, as nothing probes it back (a test's upstream, a routes-file upstream). */
  static single(name: string, url: URL): UpstreamPool {
    return new UpstreamPool(name, [url], { eject: false });
  }

  /** The next instance to send to, skipping `exclude` (those a request already tried); undefined when none can be tried. */
  pick(exclude?: ReadonlySet<UpstreamInstance>): UpstreamInstance | undefined {
    // The hot path (every proxied request): the instance in turn is up and nothing is excluded.
    const next = this.instances[this.cursor];
    if (!exclude && next.state === 'up') {
      this.cursor = (this.cursor + 1) % this.instances.length;
      return next;
    }
    const i = pickIndex(
      this.instances.map((x) => x.state),
      this.cursor,
      exclude ? (k) => exclude.has(this.instances[k]) : undefined,
    );
    if (i < 0) {
      this.probeSoon();
      return undefined;
    }
    this.cursor = (i + 1) % this.instances.length;
    return this.instances[i];
  }

  /** True when no instance can be reached (every one is `down`). */
  allDown(): boolean {
    return this.instances.every((x) => x.state === 'down');
  }

  /** Passive ejection: `instance` refused a connection; it gets no requests until a probe reaches it. */
  markDown(instance: UpstreamInstance, reason: string): void {
    if (!this.o.eject) return;
    this.set(instance, 'down', reason);
  }

  /**
   * A connection to `instance` was reset before it answered: a dying process, or only that one
   * request's fate (a handler that cut it). Probed at once rather than taken out on the spot, so a
   * healthy instance (the only one, maybe) is not shunned for a request that crashed.
   */
  recheck(instance: UpstreamInstance): void {
    if (!this.o.eject) return;
    void this.o
      .probe(instance.url, this.o.probeTimeoutMs)
      .catch((err: Error) => ({ state: 'down' as const, reason: err.message }))
      .then((r) => this.set(instance, r.state, r.reason));
  }

  /** Starts the active probes: one now, then every `probeIntervalMs` (the timer never keeps the process alive). */
  start(): this {
    if (!this.o.eject || this.timer) return this;
    void this.probeAll();
    this.timer = setInterval(() => void this.probeAll(), this.o.probeIntervalMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Probes every instance now (one pass at a time) and records the results. */
  probeAll(): Promise<void> {
    this.probing ??= Promise.all(
      this.instances.map(async (x) => {
        const r = await this.o.probe(x.url, this.o.probeTimeoutMs).catch((err: Error) => ({ state: 'down' as const, reason: err.message }));
        this.set(x, r.state, r.reason);
      }),
    )
      .then(() => undefined)
      .finally(() => {
        this.lastProbeAt = Date.now();
        this.probing = undefined;
      });
    return this.probing;
  }

  /**
   * For the gateway's `/healthz`: probes now and resolves when at least one instance is up;
   * rejects naming each instance's trouble otherwise.
   */
  async check(): Promise<void> {
    await this.probeAll();
    if (this.instances.some((x) => x.state === 'up')) return;
    throw new Error(`no healthy ${this.name} instance: ${this.describe()}`);
  }

  /** Each instance that is not up, with why: `http://a:1 down (ECONNREFUSED), …`. */
  describe(): string {
    return this.instances.map((x) => `${x.url.host} ${x.state}${x.reason ? ` (${x.reason})` : ''}`).join(', ');
  }

  /** Nothing to send to: probe at once (at most every 250 ms) rather than wait for the timer, so a returning instance is found quickly. */
  private probeSoon(): void {
    if (!this.o.eject || this.probing || Date.now() - this.lastProbeAt < 250) return;
    void this.probeAll();
  }

  private set(instance: UpstreamInstance, state: InstanceState, reason: string | undefined): void {
    if (state === 'down' && !this.o.eject) state = 'unhealthy';
    const was = instance.state;
    instance.state = state;
    instance.reason = state === 'up' ? undefined : reason;
    if (was === state) return;
    if (state === 'up') this.o.log?.info({ upstream: this.name, instance: instance.url.origin, was }, 'upstream instance back');
    else this.o.log?.warn({ upstream: this.name, instance: instance.url.origin, state, reason }, 'upstream instance out of rotation');
  }
}
