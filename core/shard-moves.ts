/**
 * Moving a logical shard to another database (issue 12 item 3, ADR 0026): the workflow's input and
 * result, its id and phases. Workflow-safe (types and pure functions only): workflows/shard-move.ts
 * imports it.
 */

export interface ShardMoveInput {
  shard: number;
  /** Database names of the shard map (ADR 0025): where the shard is now, where it goes. */
  from: string;
  to: string;
  /** How long the old copy stays (fenced) after the switch, for processes that have not refreshed yet. */
  graceSeconds: number;
  /** Rows per copy batch. */
  batchRows: number;
}

/** Row count and checksum of one table's rows of the shard, on both sides. */
export interface ShardTableCheck {
  table: string;
  sourceRows: number;
  targetRows: number;
  sourceChecksum: string;
  targetChecksum: string;
  ok: boolean;
}

export interface ShardMoveResult {
  shard: number;
  from: string;
  to: string;
  /** Rows written by the bulk copy (before the catch-up passes). */
  rowsCopied: number;
  copySeconds: number;
  rowsPerSecond: number;
  /** Catch-up passes before the fence, and logged changes replayed in all (incl. the final pass). */
  catchUpPasses: number;
  changesApplied: number;
  /** Writes to the shard were refused from the fence until the switch was committed and announced: this long. */
  writePauseMs: number;
  tables: ShardTableCheck[];
  sourceRemoved: boolean;
}

/** Phases, in order, as the workflow reports them (search attribute DotgitStatus, query `shardMovePhase`). */
export const SHARD_MOVE_PHASES = ['preparing', 'copying', 'catching-up', 'fenced', 'verifying', 'switched', 'grace', 'cleaning-up', 'done', 'rolling-back', 'rolled-back'] as const;
export type ShardMovePhase = (typeof SHARD_MOVE_PHASES)[number];

/** One move per shard at a time: a second start while one runs is refused. */
export function shardMoveWorkflowId(shard: number): string {
  return `shard-move:${shard}`;
}

/** The Redis channel a switch is announced on; every process re-reads the placements when it hears one. */
export const SHARD_PLACEMENT_CHANNEL = 'dotgit:shard-placements';
