import fs from 'node:fs';
import path from 'node:path';
import { startChild, type ManagedChild } from './child';
import { ToolInstallError } from './errors';
import type { ProvisionLog } from './log';
import { aptInstall } from './apt';
import { findOnPath } from './which';

export interface EtcdMemberPorts {
  client: number;
  peer: number;
}

export interface EtcdClusterOptions {
  /** Each member keeps `member-<n>/` (its data) and `member-<n>.log` here. */
  dataDir: string;
  /** One entry per member (3 for quorum); a restart must pass the same ports: peers are stored in the data. */
  ports: EtcdMemberPorts[];
  log: ProvisionLog;
  readyTimeoutMs?: number;
}

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly ports: EtcdMemberPorts;
  /** The running process, or undefined while stopped. */
  readonly pid: number | undefined;
  stop(): Promise<void>;
  /** Starts it again over its data (rejoins the cluster); no-op while running. */
  start(): Promise<void>;
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** `host:port` of every member's client endpoint, as Patroni's `etcd3.hosts` takes them. */
  hosts: string[];
  stop(): Promise<void>;
}

/**
 * A local etcd cluster, one process per member on 127.0.0.1, the consensus store Patroni keeps its
 * leader key in. etcd comes from PATH, else Debian's `etcd-server` package (apt, as root).
 * Resolves once every member reports healthy (which needs a quorum, so members start together).
 */
export async function startEtcdCluster(o: EtcdClusterOptions): Promise<EtcdCluster> {
  const etcd = await ensureEtcd(o.log);
  const dataDir = path.resolve(o.dataDir);
  fs.mkdirSync(dataDir, { recursive: true });
  const names = o.ports.map((_, i) => `etcd-${i + 1}`);
  const initialCluster = o.ports.map((p, i) => `${names[i]}=http://127.0.0.1:${p.peer}`).join(',');
  const members = o.ports.map((ports, i) => new Member(etcd, names[i]!, ports, dataDir, initialCluster, o));
  try {
    await Promise.all(members.map((m) => m.start()));
  } catch (err) {
    await Promise.all(members.map((m) => m.stop()));
    throw err;
  }
  o.log.info(`etcd ready: ${members.map((m) => m.clientUrl).join(' ')}`);
  return {
    members,
    hosts: o.ports.map((p) => `127.0.0.1:${p.client}`),
    stop: async () => void (await Promise.all(members.map((m) => m.stop()))),
  };
}

class Member implements EtcdMember {
  private child: ManagedChild | undefined;
  readonly clientUrl: string;

  constructor(
    private readonly bin: string,
    readonly name: string,
    readonly ports: EtcdMemberPorts,
    private readonly dataDir: string,
    private readonly initialCluster: string,
    private readonly o: EtcdClusterOptions,
  ) {
    this.clientUrl = `http://127.0.0.1:${ports.client}`;
  }

  get pid(): number | undefined {
    return this.child?.isRunning() ? this.child.pid : undefined;
  }

  async start(): Promise<void> {
    if (this.child?.isRunning()) return;
    const peerUrl = `http://127.0.0.1:${this.ports.peer}`;
    this.child = await startChild({
      name: this.name,
      command: this.bin,
      // --initial-cluster* count on the first start only; afterwards the member list is in the data.
      args: [
        '--name', this.name,
        '--data-dir', path.join(this.dataDir, this.name),
        '--listen-client-urls', this.clientUrl,
        '--advertise-client-urls', this.clientUrl,
        '--listen-peer-urls', peerUrl,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', this.initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', 'dotgit-ha',
        '--logger', 'zap',
      ],
      logFile: path.join(this.dataDir, `${this.name}.log`),
      pidFile: path.join(this.dataDir, `${this.name}.pid`),
      log: this.o.log,
      probe: () => health(this.clientUrl),
      readyTimeoutMs: this.o.readyTimeoutMs ?? 60_000,
    });
  }

  async stop(): Promise<void> {
    await this.child?.stop();
  }
}

async function health(url: string): Promise<void> {
  const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
  const body = (await res.json().catch(() => ({}))) as { health?: string };
  if (!res.ok || body.health !== 'true') throw new Error(`${url}/health answered ${res.status} ${JSON.stringify(body)}`);
}

/** etcd from PATH (or /usr/bin), else `apt-get install etcd-server` when running as root. */
async function ensureEtcd(log: ProvisionLog): Promise<string> {
  const found = findOnPath('etcd', ['/usr/bin', '/usr/local/bin']);
  if (found) return found;
  if (process.getuid?.() !== 0) throw new ToolInstallError('etcd is not installed; install the system package (Debian: etcd-server)');
  log.info('etcd not found; installing the Debian package etcd-server');
  if (!(await aptInstall(['etcd-server'], log))) throw new ToolInstallError('apt-get install etcd-server failed (see the log above); install etcd');
  const installed = findOnPath('etcd', ['/usr/bin']);
  if (!installed) throw new ToolInstallError('apt-get installed etcd-server, but no etcd binary was found');
  return installed;
}
