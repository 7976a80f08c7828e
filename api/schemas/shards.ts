import { z } from 'zod';
import { SHARD_COUNT } from '../../core/shards';

/** Logical shards (ADR 0025) and moving one to another database (ADR 0026). */

const SHARD_MESSAGE = `shard must be a logical shard number, 0 to ${SHARD_COUNT - 1}`;
export const shardParams = z.object({ shard: z.string({ error: SHARD_MESSAGE }).regex(/^[0-7]$/, { error: SHARD_MESSAGE }).meta({ description: 'logical shard, 0..7' }) });

const DATABASE_MESSAGE = 'toDatabase must name a database of the shard map (DOTGIT_SHARD_MAP), e.g. "global" or "db2"';
export const shardMoveBody = z.strictObject({
  toDatabase: z.string({ error: DATABASE_MESSAGE }).regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, { error: DATABASE_MESSAGE }),
});
export const shardMoveAnswer = z.object({
  id: z.string().meta({ description: 'the shardMove workflow id (shard-move:<shard>); its DotgitStatus search attribute is the phase' }),
  shard: z.number().int(),
  from: z.string(),
  to: z.string(),
});
export type ShardMoveAnswer = z.infer<typeof shardMoveAnswer>;
