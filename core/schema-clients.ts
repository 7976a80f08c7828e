import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Db } from './db';
import type { Logger } from './logger';
import { shippedSchemaVersion } from './migrate';
import { deleteSchemaClient, upsertSchemaClient } from './stores/schema-clients-store';

/**
 * Registration of a running process in `schema_clients` (docs/migrations.md): the schema version
 * its code was shipped with, so a `contract` migration waits until no older process runs. Every
 * process that connects to Postgres (api, git-server, gateway, worker) calls this once at start.
 */
export interface SchemaClientRegistration {
  readonly instance: string;
  readonly needsVersion: number;
  /** Stops refreshing and deletes the row (a clean shutdown); never throws. */
  stop(): Promise<void>;
}

export interface SchemaClientOptions {
  /** How often `seen_at` is refreshed. Default 30 (`DOTGIT_SCHEMA_CLIENT_REFRESH_SECONDS`). */
  refreshSeconds?: number;
  log?: Pick<Logger, 'warn'>;
  /** Defaults: this host's name, this process's pid, the newest migration in this checkout. */
  host?: string;
  pid?: number;
  needsVersion?: number;
}

/**
 * Registers this process now and refreshes the row periodically. A failed write (the database
 * briefly away) is logged and retried at the next refresh rather than stopping the process: while
 * it is missing the process only fails to hold back a contract migration, and start-up must not
 * depend on the database being up at that instant.
 */
export async function registerSchemaClient(db: Db, kind: string, opts: SchemaClientOptions = {}): Promise<SchemaClientRegistration> {
  const host = opts.host ?? os.hostname();
  const pid = opts.pid ?? process.pid;
  const needsVersion = opts.needsVersion ?? shippedSchemaVersion();
  const instance = `${kind}@${host}:${pid}:${randomUUID().slice(0, 8)}`;
  const row = { instance, kind, host, pid, needsVersion };
  const refresh = () =>
    upsertSchemaClient(db, row).catch((err: unknown) => opts.log?.warn({ err, instance }, 'could not register in schema_clients; retrying at the next refresh'));
  await refresh();
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void refresh().finally(() => (busy = false));
  }, (opts.refreshSeconds ?? 30) * 1000);
  timer.unref();
  let stopped: Promise<void> | undefined;
  return {
    instance,
    needsVersion,
    stop: () =>
      (stopped ??= (async () => {
        clearInterval(timer);
        await deleteSchemaClient(db, instance).catch((err: unknown) => opts.log?.warn({ err, instance }, 'could not deregister from schema_clients; the row goes stale'));
      })()),
  };
}
