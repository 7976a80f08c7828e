import fs from 'node:fs';
import path from 'node:path';
import { startChild } from './child';
import { ToolInstallError } from './errors';
import { resolvePort, withPortRetry } from './free-port';
import type { ProvisionLog } from './log';
import { findOnPath } from './which';
import { aptInstall } from './apt';

/** CONTRACT "Extended surface": `npm start -- --observability` serves Prometheus here. */
export const DEFAULT_PROMETHEUS_PORT = 9090;

/** What Prometheus scrapes: one job per role, each target a process's `/metrics` URL. */
export interface ScrapeTarget {
  /** The role (`gateway`, `api`, `git-server`, `worker`, `temporal`): the `job` label. */
  job: string;
  /** The process's instance name: the `instance` label. */
  instance: string;
  /** Its full metrics URL (`http://127.0.0.1:8081/metrics`). */
  url: string;
}

export interface PrometheusOptions {
  /** Holds prometheus.yml, the TSDB and prometheus.log. */
  dataDir: string;
  /** 0 = a free one. */
  port: number;
  targets: ScrapeTarget[];
  /** Alert rule files to load (`infra/observability/alerts.yml`). */
  ruleFiles?: string[];
  /** Default 5 s: a local platform's runs are short. */
  scrapeIntervalSeconds?: number;
  log: ProvisionLog;
  readyTimeoutMs?: number;
}

export interface PrometheusHandle {
  url: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** `prometheus` and `promtool` from PATH, else the Debian package `prometheus` (as root). */
export async function ensurePrometheus(log: ProvisionLog): Promise<{ prometheus: string; promtool: string }> {
  const find = () => {
    const prometheus = findOnPath('prometheus', ['/usr/bin', '/usr/local/bin']);
    const promtool = findOnPath('promtool', ['/usr/bin', '/usr/local/bin']);
    return prometheus && promtool ? { prometheus, promtool } : undefined;
  };
  const found = find();
  if (found) return found;
  log.info('prometheus not found; installing the Debian package prometheus');
  // aptInstall runs with RUNLEVEL=1: the package's own service (on 9090) is not started.
  if (!(await aptInstall(['prometheus'], log))) throw new ToolInstallError('apt-get install prometheus failed (see the log above); install Prometheus (prometheus and promtool on PATH)');
  const installed = find();
  if (!installed) throw new ToolInstallError('apt-get installed prometheus, but prometheus/promtool were not found');
  return installed;
}

/** The scrape configuration for `targets`: one job per role, each target relabelled to its path and instance name. */
export function scrapeConfig(targets: ScrapeTarget[], ruleFiles: string[], intervalSeconds: number): string {
  const jobs = new Map<string, ScrapeTarget[]>();
  for (const t of targets) jobs.set(t.job, [...(jobs.get(t.job) ?? []), t]);
  const config = {
    global: { scrape_interval: `${intervalSeconds}s`, evaluation_interval: `${intervalSeconds}s` },
    rule_files: ruleFiles,
    scrape_configs: [...jobs].map(([job, list]) => ({
      job_name: job,
      metrics_path: new URL(list[0].url).pathname,
      static_configs: list.map((t) => ({ targets: [new URL(t.url).host], labels: { dotgit_instance: t.instance } })),
    })),
  };
  // JSON is YAML: no YAML writer needed for a generated file.
  return JSON.stringify(config, null, 2) + '\n';
}

/** Prometheus on 127.0.0.1 scraping `targets`; resolves once `/-/ready` answers. */
export async function startPrometheus(opts: PrometheusOptions): Promise<PrometheusHandle> {
  const { prometheus } = await ensurePrometheus(opts.log);
  return withPortRetry(opts.port === 0, () => startOnce(prometheus, opts));
}

async function startOnce(binary: string, opts: PrometheusOptions): Promise<PrometheusHandle> {
  const port = await resolvePort(opts.port);
  const dataDir = path.resolve(opts.dataDir);
  fs.mkdirSync(path.join(dataDir, 'tsdb'), { recursive: true });
  const configFile = path.join(dataDir, 'prometheus.yml');
  fs.writeFileSync(configFile, scrapeConfig(opts.targets, opts.ruleFiles ?? [], opts.scrapeIntervalSeconds ?? 5));
  const url = `http://127.0.0.1:${port}`;
  const child = await startChild({
    name: 'prometheus',
    command: binary,
    args: [`--config.file=${configFile}`, `--storage.tsdb.path=${path.join(dataDir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`, '--storage.tsdb.retention.time=7d'],
    logFile: path.join(dataDir, 'prometheus.log'),
    pidFile: path.join(dataDir, 'prometheus.pid'),
    log: opts.log,
    probe: async () => {
      const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2000) });
      if (!res.ok) throw new Error(`prometheus not ready (${res.status})`);
    },
    readyTimeoutMs: opts.readyTimeoutMs ?? 60_000,
  });
  opts.log.info(`prometheus ready at ${url}`);
  return { url, port, pid: child.pid, stop: async () => void (await child.stop()) };
}
