import { z } from 'zod';
import { WEBHOOK_EVENTS } from '../../core/webhook-payloads';
import { isValidName } from '../../core/names';
import { environmentField } from '../validation';
import { timestamp } from './common';

/** A repository's settings: protected branches, collaborators, secrets, webhooks, and where it lives. */

const ACCESS = ['read', 'write', 'admin'] as const;

export const protectionBody = z.strictObject({
  allowForcePush: z.boolean().optional().transform((v) => v ?? false),
  allowDeletion: z.boolean().optional().transform((v) => v ?? false),
  pushers: z
    .array(z.string())
    .max(1000)
    .nullish()
    .superRefine((list, ctx) =>
      list?.forEach((p, i) => {
        if (!isValidName(p)) ctx.addIssue({ code: 'custom', input: p, message: `pushers[${i}] is not a user name (${JSON.stringify(p.slice(0, 100))})` });
      }),
    )
    .transform((v) => v ?? undefined)
    .meta({ description: 'only these users may push (absent: everyone with write access)' }),
});

export const protectionAnswer = z
  .object({ pattern: z.string(), allowForcePush: z.boolean(), allowDeletion: z.boolean(), pushers: z.array(z.string()).optional() })
  .meta({ id: 'Protection' });
export const protectionListAnswer = z.object({ protections: z.array(protectionAnswer) });

export const collaboratorBody = z.strictObject({ access: z.enum(ACCESS, { error: `access must be one of ${ACCESS.join(', ')}` }) });
export const collaboratorAnswer = z.object({ username: z.string(), access: z.enum(ACCESS) });
export const collaboratorListAnswer = z.object({ collaborators: z.array(collaboratorAnswer) });

/** '' (or none) means "every job and environment". */
export const secretEnvironment = z.preprocess((v) => (v === '' || v === null ? undefined : v), environmentField.optional()).transform((v) => v ?? '');
export const secretBody = z.strictObject({
  value: z.string({ error: 'value must be a string' }).meta({ description: 'at most 64 KiB; never returned' }),
  environment: secretEnvironment.meta({ description: 'only for this environment (absent: every job and environment)' }),
});
export const secretQuery = z.object({ environment: z.string().max(64).optional() });
export const secretListAnswer = z.object({
  secrets: z.array(z.object({ name: z.string(), environment: z.string().nullable(), updatedBy: z.string(), updatedAt: timestamp })),
});

const EVENT_NAMES: readonly string[] = [...WEBHOOK_EVENTS, '*'];
const EVENTS_MESSAGE = `events must be a non-empty list of ${EVENT_NAMES.join(', ')}`;
const SECRET_MESSAGE = 'secret must be a string of 1 to 256 characters';
export const webhookBody = z.strictObject({
  url: z.unknown().meta({ type: 'string', format: 'uri', description: 'http(s) URL without credentials, at a public address' }),
  secret: z.string({ error: SECRET_MESSAGE }).min(1, { error: SECRET_MESSAGE }).max(256, { error: SECRET_MESSAGE }),
  events: z
    .array(z.string({ error: EVENTS_MESSAGE }).refine((e) => EVENT_NAMES.includes(e), { error: EVENTS_MESSAGE }).meta({ enum: [...EVENT_NAMES] }), { error: EVENTS_MESSAGE })
    .min(1, { error: EVENTS_MESSAGE })
    .max(EVENT_NAMES.length, { error: EVENTS_MESSAGE }),
});
export const webhookAnswer = z
  .object({ id: z.number().int(), url: z.string(), events: z.array(z.string()), createdBy: z.string(), createdAt: timestamp })
  .meta({ id: 'Webhook' });
export const webhookListAnswer = z.object({ webhooks: z.array(webhookAnswer) });
export const deliveriesQuery = z.object({
  limit: z.string().regex(/^\d{1,4}$/, { error: 'limit must be a number from 1 to 1000' }).optional().meta({ description: '1 to 1000, default 100' }),
});
/** `POST …/deliveries/{delivery}/redeliver` (issue 18): the dispatch that sends the kept body again. */
export const redeliveryAnswer = z.object({
  id: z.string().meta({ description: 'the workflow id of the dispatch (the new delivery appears in the log with a new delivery id)' }),
  redeliveryOf: z.string(),
  status: z.literal('queued'),
});
export const deliveryListAnswer = z.object({
  deliveries: z.array(
    z.object({
      deliveryId: z.string(),
      event: z.string(),
      action: z.string().nullable(),
      attempt: z.number().int(),
      outcome: z.string(),
      responseStatus: z.number().int().nullable(),
      error: z.string().nullable(),
      durationMs: z.number().int().nullable(),
      startedAt: timestamp,
      finishedAt: timestamp.nullable(),
    }),
  ),
});

export const commitStatusAnswer = z
  .looseObject({
    state: z.enum(['pending', 'success', 'failure']),
    sha: z.string(),
    total_count: z.number().int(),
    statuses: z.array(z.looseObject({ id: z.string(), state: z.string(), context: z.string() })),
  })
  .meta({ id: 'CombinedStatus', description: 'GitHub’s combined commit status' });

export const replicaListAnswer = z.object({
  pushedAt: timestamp.nullable(),
  replicas: z.array(
    z.object({
      zone: z.string(),
      kind: z.enum(['root', 'url']),
      upToDate: z.boolean(),
      syncedAt: timestamp.nullable(),
      lagSeconds: z.number().nullable(),
      lastError: z.string().nullable(),
    }),
  ),
});

const NODE_MESSAGE = 'node must be a storage node id';
export const moveBody = z.strictObject({ node: z.string({ error: NODE_MESSAGE }).min(1, { error: NODE_MESSAGE }).max(200, { error: NODE_MESSAGE }) });
export const moveAnswer = z.object({ id: z.string(), from: z.string(), to: z.string() });
