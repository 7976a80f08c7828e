import { z } from 'zod';
import { nameField, timestamp } from './common';

/** The audit log (tenant admins: their tenant; platform admins: any) and the check of its hash chains. */

const whole = (name: string, max: number) =>
  z.string().regex(/^\d{1,16}$/, { error: `${name} must be a whole number` }).optional().meta({ description: `a whole number, at most ${max}` });

export const auditQuery = z.object({
  tenant: nameField('tenant').optional().meta({ description: 'whose events (default: the caller’s tenant; every tenant for a platform admin)' }),
  after: whole('after', Number.MAX_SAFE_INTEGER).meta({ description: 'the event id to continue after (`next` of the previous page)' }),
  limit: whole('limit', 1000).meta({ description: '1 to 1000, default 100' }),
});

export const auditVerifyQuery = z.object({ tenant: nameField('tenant').optional().meta({ description: 'only the chain of this tenant’s shard' }) });

export const auditListAnswer = z.object({
  events: z.array(
    z.object({
      id: z.number().int(),
      tenant: z.string().nullable(),
      actor: z.string(),
      action: z.string(),
      target: z.string().nullable(),
      detail: z.unknown(),
      requestId: z.string().nullable(),
      at: timestamp,
      shard: z.number().int(),
      seq: z.number().int().nullable(),
      hash: z.string().nullable(),
    }),
  ),
  next: z.number().int().nullable().meta({ description: 'the `after` of the next page; null on the last' }),
});

export const auditVerifyAnswer = z.looseObject({
  ok: z.boolean(),
  checked: z.number().int(),
  firstBroken: z.looseObject({ shard: z.number().int(), seq: z.number().int(), id: z.number().int().nullable(), reason: z.string() }).optional(),
});
