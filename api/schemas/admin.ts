import { z } from 'zod';
import { nameField, nextPage, timestamp } from './common';

/** Tenants, users, tokens, backups and restores. */

export const ROLES = ['admin', 'member', 'reader'] as const;
export const SCOPES = ['read', 'write', 'admin'] as const;

export const tenantBody = z.strictObject({ name: nameField('name') });
export const tenantAnswer = z.object({ id: z.number().int(), name: z.string() }).meta({ id: 'Tenant' });

export const userBody = z.strictObject({
  username: nameField('username'),
  role: z
    .enum(ROLES, { error: `role must be one of ${ROLES.join(', ')}` })
    .nullish()
    .transform((r) => r ?? 'member'),
});
export const userAnswer = z.object({ id: z.number().int(), username: z.string(), role: z.enum(ROLES) });

const SCOPES_MESSAGE = `scopes must be a non-empty array of ${SCOPES.join(', ')}`;
const EXPIRES_MESSAGE = 'expiresAt must be an ISO 8601 date-time with a time zone (2030-01-31T12:00:00Z) or a date (2030-01-31)';
export const tokenBody = z.strictObject({
  username: nameField('username').optional().meta({ description: 'whose token (tenant admins: a user of their tenant); default the caller' }),
  scopes: z.array(z.enum(SCOPES, { error: SCOPES_MESSAGE }), { error: SCOPES_MESSAGE }).min(1, { error: SCOPES_MESSAGE }),
  expiresAt: z.union([z.iso.datetime({ offset: true }), z.iso.date()], { error: EXPIRES_MESSAGE }).nullish(),
});
export const tokenAnswer = z.object({
  id: z.number().int(),
  token: z.string().meta({ description: 'shown once' }),
  scopes: z.array(z.enum(SCOPES)),
  expiresAt: timestamp.nullable(),
});

/** `GET /api/v1/tokens`: the caller's own live tokens; never the secret (only its hash is stored). */
export const tokenListAnswer = z.object({
  tokens: z.array(
    z.object({
      id: z.number().int(),
      scopes: z.array(z.enum(SCOPES)),
      createdAt: timestamp,
      expiresAt: timestamp.nullable(),
      parentTokenId: z.number().int().nullable().meta({ description: 'the token it was derived from (revoking that one ends this one)' }),
      current: z.boolean().meta({ description: 'the token of this request' }),
    }),
  ),
  next: nextPage,
});

export const backupBody = z.strictObject({ full: z.boolean().optional().transform((v) => v ?? false) });
export const backupStartedAnswer = z.object({ id: z.string(), status: z.literal('running') });
export const backupListAnswer = z.object({
  backups: z.array(
    z.object({
      id: z.string(),
      trigger: z.string(),
      status: z.string(),
      startedAt: timestamp,
      finishedAt: timestamp.nullable(),
      repos: z.number().int().nullable(),
      changed: z.number().int().nullable(),
      postgresBase: z.boolean().nullable(),
      error: z.string().optional(),
    }),
  ),
});

const AT_MESSAGE = 'at must be an ISO 8601 time, e.g. 2024-05-01T12:00:00Z';
const REPOS_MESSAGE = 'repos must be a non-empty list of "owner/name"';
export const restoreBody = z.strictObject({
  at: z.string({ error: AT_MESSAGE }).refine((s) => /^\d{4}-\d{2}-\d{2}T/.test(s) && !Number.isNaN(Date.parse(s)), { error: AT_MESSAGE }).meta({ format: 'date-time' }),
  repos: z.array(z.string({ error: REPOS_MESSAGE }), { error: REPOS_MESSAGE }).min(1, { error: REPOS_MESSAGE }).max(10_000, { error: REPOS_MESSAGE }).optional(),
  postgres: z.boolean().optional(),
});
export const restoreStartedAnswer = z.object({ id: z.string(), status: z.literal('running'), at: timestamp });
export const restoreAnswer = z.object({
  id: z.string(),
  kind: z.string(),
  at: timestamp,
  status: z.string(),
  backupId: z.string().nullable(),
  dir: z.string().nullable(),
  problems: z.array(z.string()),
  startedAt: timestamp,
  finishedAt: timestamp.nullable(),
});
export const restoreListAnswer = z.object({ restores: z.array(restoreAnswer) });
export const replicaOverviewAnswer = z.object({
  database: z
    .object({
      primary: z.string().nullable(),
      standbys: z.array(z.object({ name: z.string(), lagBytes: z.number().nullable(), lagSeconds: z.number().nullable(), inReads: z.boolean(), error: z.string().nullable() })),
    })
    .nullable()
    .meta({ description: 'the Postgres primary and each standby’s lag; null with one database host' }),
  zones: z.array(z.object({ name: z.string(), kind: z.enum(['root', 'url']) })).meta({ description: 'the configured repository replica zones' }),
});

export type TokenBody = z.input<typeof tokenBody>;
export type TokenAnswer = z.infer<typeof tokenAnswer>;
export type TokenListAnswer = z.infer<typeof tokenListAnswer>;

/** `POST /api/v1/admin/database/switchover` (platform admins): a planned switchover of the Postgres primary (ADR 0027). */
export const switchoverBody = z.strictObject({
  candidate: z
    .string({ error: 'candidate must be the name of a Patroni member' })
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, { error: 'candidate must be the name of a Patroni member (1-63 of A-Z a-z 0-9 . _ -)' })
    .optional()
    .meta({ description: 'the member to promote; default the synchronous standby' }),
});
export const switchoverStartedAnswer = z.object({ id: z.string().meta({ description: 'the workflow id (Temporal Web UI)' }), status: z.literal('started') });
