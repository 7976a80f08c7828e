import type { Queryable } from '../db';

/** Batched deletes for the stores' retention functions (housekeeping). */

/**
 * A `DELETE … WHERE ctid = ANY(ARRAY(SELECT ctid … LIMIT batch))`: one short statement, so pruning a
 * busy table never holds a long lock. `table` and `where` come from store code, never a request.
 */
export async function deleteBatch(q: Queryable, table: string, where: string, params: unknown[], batch: number): Promise<number> {
  const sql = `DELETE FROM ${table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM ${table} d WHERE ${where} LIMIT ${Number(batch)}))`;
  return (await q.query(sql, params)).rowCount ?? 0;
}
