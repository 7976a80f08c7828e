import { promises as fs } from 'node:fs';
import path from 'node:path';
import { git, runIdsFrom, tempDir, type GitOutput } from '../helpers/git';
import type { ChaosPlatform } from './chaos-platform';

/**
 * The steady mix the faults land in: pushes with pipelines (one pusher per repository), API reads,
 * manual runs and deploys, each recorded so the invariants can be checked afterwards.
 */

/** Deploy steps count how often they completed in their job's workspace (kept across a step's retries). */
const COUNTED_SHIP = (seconds: number) => `
      - name: ship
        run: |
          echo start >> .marker
          sleep ${seconds}
          echo done >> .marker
          echo "completed=$(grep -c done .marker)"`;

export const LOAD_PIPELINE = `
jobs:
  build:
    steps:
      - name: build
        run: |
          echo "building $DOTGIT_COMMIT"
          sleep 1
          echo built
environments:
  staging:
    deploy:${COUNTED_SHIP(1)}
  production:
    approval: true
    deploy:${COUNTED_SHIP(1)}
  release:
    deploy:${COUNTED_SHIP(6)}
`;

export interface PushRecord {
  repo: string;
  commit: string;
  code: number;
  output: string;
  runIds: string[];
  at: number;
}

/** The git client of the tests, with a deadline: a push into a part that is down must not hang the suite. */
export function runGit(args: string[], cwd?: string, timeoutMs = 120_000, onStderr?: (chunk: string) => void, env: NodeJS.ProcessEnv = {}): Promise<GitOutput> {
  return git(args, cwd, env, { timeoutMs, onStderr });
}

/** A repository of the tenant with a local working copy whose every commit is pushed by one writer. */
export class PushedRepo {
  private counter = 0;
  private constructor(
    private readonly cp: ChaosPlatform,
    readonly name: string,
    readonly work: string,
  ) {}

  static async create(cp: ChaosPlatform, name: string, pipeline: string): Promise<PushedRepo> {
    const made = await cp.call('POST', '/api/v1/repos', { owner: cp.tenant, name, visibility: 'private' });
    if (made.status !== 201) throw new Error(`repo ${name}: ${made.status} ${made.text}`);
    const work = tempDir('dotgit-chaos-');
    await runGit(['init', '-q', '-b', 'main'], work);
    await fs.mkdir(path.join(work, '.dotgit'), { recursive: true });
    await fs.writeFile(path.join(work, '.dotgit', 'pipeline.yml'), pipeline);
    return new PushedRepo(cp, name, work);
  }

  /** A new commit on main (with `extra` files), pushed; the record says what the client saw. */
  async commitAndPush(opts: { extra?: Record<string, Buffer | string>; timeoutMs?: number; onStderr?: (chunk: string) => void; env?: NodeJS.ProcessEnv } = {}): Promise<PushRecord> {
    this.counter++;
    await fs.writeFile(path.join(this.work, 'counter.txt'), `${this.name} ${this.counter} ${Date.now()}\n`);
    for (const [f, content] of Object.entries(opts.extra ?? {})) await fs.writeFile(path.join(this.work, f), content);
    await runGit(['add', '-A'], this.work);
    const c = await runGit(['commit', '-q', '-m', `change ${this.counter}`], this.work);
    if (c.code !== 0) throw new Error(`commit failed: ${c.stderr}`);
    const commit = (await runGit(['rev-parse', 'HEAD'], this.work)).stdout.trim();
    const at = Date.now();
    const push = await runGit(['push', this.cp.cloneUrl(this.name), 'main'], this.work, opts.timeoutMs ?? 120_000, opts.onStderr, opts.env);
    const output = push.stdout + push.stderr;
    return { repo: this.name, commit, code: push.code, output, runIds: runIdsFrom(output), at };
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Pauses between operations of each loop. Steady, not saturating: on 2 shared cores every push
 * costs a few node hook processes and a gVisor sandbox, and a saturated queue would measure the
 * backlog instead of the recovery.
 */
const PACE = { pushMs: 3000, apiMs: 500, deployMs: 8000, manualRunMs: 10_000 };

export class Load {
  readonly pushes: PushRecord[] = [];
  /** Ids of deploys answered 202, and how many deploy requests got no 202. */
  readonly deploys: Array<{ id: string; at: number }> = [];
  deployRefused = 0;
  readonly manualRuns: Array<{ id: string; at: number }> = [];
  manualRefused = 0;
  apiOk = 0;
  apiFailed = 0;
  private active = false;
  private pushesPaused = false;
  private pushesInFlight = 0;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly cp: ChaosPlatform,
    private readonly repos: PushedRepo[],
  ) {}

  /** Pushes made outside the load (probes, drills) are checked like the load's own. */
  record(p: PushRecord): PushRecord {
    this.pushes.push(p);
    return p;
  }

  start(): void {
    if (this.active) return;
    this.active = true;
    this.loops = [
      ...this.repos.map((r) => this.loop(PACE.pushMs, async () => {
        if (this.pushesPaused) return;
        this.pushesInFlight++;
        try {
          this.record(await r.commitAndPush());
        } finally {
          this.pushesInFlight--;
        }
      })),
      this.loop(PACE.apiMs, () => this.apiRead()),
      this.loop(PACE.deployMs, () => this.deploy()),
      this.loop(PACE.manualRunMs, () => this.manualRun()),
    ];
  }

  /** Stops every loop and waits for what is in flight. */
  async stop(): Promise<void> {
    this.active = false;
    await Promise.all(this.loops);
    this.loops = [];
  }

  /** Pausing resolves once the pushes in flight have ended. */
  async pausePushes(paused: boolean): Promise<void> {
    this.pushesPaused = paused;
    while (paused && this.pushesInFlight > 0) await sleep(100);
  }

  private async loop(pauseMs: number, body: () => Promise<void>): Promise<void> {
    while (this.active) {
      try {
        await body();
      } catch {
        // a refused connection while a part is down is the point of the exercise
      }
      await sleep(pauseMs);
    }
  }

  private async apiRead(): Promise<void> {
    const repo = this.repos[this.apiOk % this.repos.length].name;
    for (const p of [`/api/v1/repos/${this.cp.tenant}/${repo}`, `/api/v1/repos/${this.cp.tenant}/${repo}/runs?ref=refs/heads/main`]) {
      const r = await this.cp.call('GET', p, undefined, { timeoutMs: 10_000 }).catch(() => undefined);
      if (r?.status === 200) this.apiOk++;
      else this.apiFailed++;
    }
  }

  private async deploy(): Promise<void> {
    const repo = this.repos[this.deploys.length % this.repos.length].name;
    const r = await this.cp.call('POST', `/api/v1/repos/${this.cp.tenant}/${repo}/deploys`, { ref: 'main', environment: 'staging' }, { timeoutMs: 20_000 }).catch(() => undefined);
    if (r?.status === 202) this.deploys.push({ id: r.body.id, at: Date.now() });
    else this.deployRefused++;
  }

  private async manualRun(): Promise<void> {
    const repo = this.repos[this.manualRuns.length % this.repos.length].name;
    const r = await this.cp.call('POST', `/api/v1/repos/${this.cp.tenant}/${repo}/runs`, { ref: 'main' }, { timeoutMs: 20_000 }).catch(() => undefined);
    if (r?.status === 202) this.manualRuns.push({ id: r.body.id, at: Date.now() });
    else this.manualRefused++;
  }
}
