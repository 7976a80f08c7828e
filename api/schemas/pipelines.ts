import { z } from 'zod';
import { timestamp } from './common';

/**
 * Issue 17 items 3 and 5: a repository's pipeline dependency caches, and re-runs of a run (ADR 0030).
 */

export const rerunBody = z.strictObject({
  failedOnly: z.boolean().optional().meta({ description: 'run again only the jobs that did not succeed and the jobs that need them (default: every job)' }),
});

export const rerunAnswer = z.object({ id: z.string(), attempt: z.number().int().min(2).meta({ description: 'the new attempt of the run' }) });

export const runAttempt = z
  .object({
    attempt: z.number().int().min(1),
    status: z.string(),
    message: z.string().nullable(),
    failedOnly: z.boolean(),
    requestedBy: z.string().nullable().meta({ description: 'who asked for the re-run (null for attempt 1)' }),
    createdAt: timestamp,
    startedAt: timestamp.nullable(),
    finishedAt: timestamp.nullable(),
  })
  .meta({ id: 'RunAttempt' });

export const cacheIdParams = z.object({ id: z.coerce.number({ error: 'cache id must be a number' }).int().min(1, { error: 'cache id must be a number' }) });

export const cacheListQuery = z.object({
  ref: z.string().max(255).optional().meta({ description: 'only caches saved for this ref (refs/heads/main)' }),
  key: z.string().max(512).optional().meta({ description: 'only caches whose key starts with this' }),
});

export const cacheAnswer = z
  .object({
    id: z.number().int(),
    key: z.string(),
    ref: z.string(),
    size: z.number().int(),
    runId: z.string().nullable(),
    job: z.string().nullable(),
    createdAt: timestamp,
    lastUsedAt: timestamp,
  })
  .meta({ id: 'PipelineCache' });

export const cacheListAnswer = z.object({
  caches: z.array(cacheAnswer),
  totalBytes: z.number().int().meta({ description: "all of the repository's caches, whatever the filter" }),
  limitBytes: z.number().int().meta({ description: 'DOTGIT_CACHE_REPO_MAX_MB: beyond it the least recently used are evicted' }),
});

export const runQuery = z.object({
  attempt: z.coerce.number({ error: 'attempt must be a number' }).int().min(1, { error: 'attempt must be at least 1' }).optional().meta({ description: 'an earlier attempt: its status and its steps as it left them (default: the current attempt)' }),
});
