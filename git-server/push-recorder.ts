import { randomBytes } from 'node:crypto';
import type { Db } from '../core/db';
import { inTransaction } from '../core/db';
import { readFileAtCommit } from '../core/git';
import { PIPELINE_PATH, PipelineSpecError, parsePipeline, triggersOnPush } from '../core/pipeline-spec';
import { pipelineWorkflowId, type PipelineInput } from '../core/run-types';

export interface RefUpdate {
  oldSha: string;
  newSha: string;
  ref: string;
}

export interface PushContext {
  tenantId: number;
  tenant: string;
  repoId: number;
  repo: string;
  gitDir: string;
  actor: string;
}

const SHA = /^[0-9a-f]{40}$|^[0-9a-f]{64}$/;
const ZERO = /^0+$/;

/**
 * Turns the ref updates of one push into runs: one run per updated branch or tag whose commit has a
 * pipeline file that asks for this ref. Run rows and outbox rows are written in one transaction,
 * so either the push has all its pipelines queued or none (and the hook says so).
 */
export async function recordPush(db: Db, ctx: PushContext, updates: RefUpdate[]): Promise<PipelineInput[]> {
  const planned: PipelineInput[] = [];
  for (const u of updates) {
    if (!SHA.test(u.newSha) || ZERO.test(u.newSha)) continue; // deletions start nothing
    if (!/^refs\/(heads|tags)\//.test(u.ref)) continue;
    const text = await readFileAtCommit(ctx.gitDir, u.newSha, PIPELINE_PATH);
    if (text === undefined) continue;
    try {
      if (!triggersOnPush(parsePipeline(text), u.ref)) continue;
    } catch (err) {
      // An invalid file still gets a run, so the author sees the problem on the run.
      if (!(err instanceof PipelineSpecError)) throw err;
    }
    planned.push({
      runId: pipelineWorkflowId(ctx.tenant, ctx.repo, randomBytes(8).toString('hex')),
      tenantId: ctx.tenantId,
      tenant: ctx.tenant,
      repoId: ctx.repoId,
      repo: ctx.repo,
      ref: u.ref,
      commit: u.newSha,
    });
  }
  await inTransaction(db, async (c) => {
    for (const run of planned) {
      await c.query(`INSERT INTO runs (tenant_id, id, repo_id, ref, commit_sha, status) VALUES ($1, $2, $3, $4, $5, 'queued')`, [
        run.tenantId,
        run.runId,
        run.repoId,
        run.ref,
        run.commit,
      ]);
      await c.query(`INSERT INTO push_outbox (tenant_id, run_id, payload) VALUES ($1, $2, $3)`, [run.tenantId, run.runId, JSON.stringify(run)]);
    }
    await c.query(`INSERT INTO audit_log (tenant_id, actor, action, target, detail) VALUES ($1, $2, 'repo.push', $3, $4)`, [
      ctx.tenantId,
      ctx.actor,
      `${ctx.tenant}/${ctx.repo}`,
      JSON.stringify({ updates, runs: planned.map((p) => p.runId) }),
    ]);
  });
  return planned;
}
