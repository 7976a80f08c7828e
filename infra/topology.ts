import { promises as fs } from 'node:fs';
import path from 'node:path';

/** Roles of the processes the local runner starts (CONTRACT "Extended surface"). */
export type TopologyRole = 'gateway' | 'api' | 'git-server' | 'worker' | 'temporal' | 'postgres' | 'patroni' | 'etcd' | 'redis' | 'sentinel' | 'prometheus';

/** One process the runner started: scripts find a given instance here and stop it by pid. */
export interface TopologyProcess {
  role: TopologyRole;
  /** A worker's is the host id its steps report; others' name the instance of their role (`api-1`). */
  instance: string;
  pid: number;
  port: number;
  url?: string;
  /** Where its Prometheus metrics are, when not at `url` + `/metrics` (the Temporal server's own port). */
  metricsUrl?: string;
}

/**
 * `<dataDir>/run/topology.json` while the runner runs: rewritten whenever a process it keeps
 * running gets a new pid, removed when it stops. Writes go one at a time, each to a temporary file
 * renamed over the last, so a reader never sees half a file and an older write never lands last.
 */
export class TopologyFile {
  private queue: Promise<void> = Promise.resolve();
  private removed = false;

  constructor(
    readonly file: string,
    /** The processes as they are now (async: a worker's host id is read from its data dir). */
    private readonly collect: () => Promise<TopologyProcess[]>,
    private readonly warn: (message: string) => void,
  ) {}

  /** Writes the current processes; resolves when written (never rejects: a failed write is a warning). */
  write(): Promise<void> {
    return this.then(async () => {
      if (this.removed) return;
      const processes = (await this.collect()).filter((p) => p.pid > 0);
      const tmp = `${this.file}.${process.pid}.tmp`;
      await fs.mkdir(path.dirname(this.file), { recursive: true });
      await fs.writeFile(tmp, JSON.stringify({ processes }, null, 2) + '\n');
      await fs.rename(tmp, this.file);
    });
  }

  /** Removes the file; later writes do nothing. */
  remove(): Promise<void> {
    return this.then(async () => {
      this.removed = true;
      await fs.rm(this.file, { force: true });
    });
  }

  private then(step: () => Promise<void>): Promise<void> {
    return (this.queue = this.queue.then(step).catch((err) => this.warn(`${this.file}: ${(err as Error).message}`)));
  }
}
