import { z } from 'zod';
import { MAX_COMMITS, refProblem, treePathProblem } from '../../core/browse-input';
import { ownerRepoParams, timestamp } from './common';

/**
 * The repository browser (issue 18, ADR 0034): branches, tags, a ref's commits with their latest
 * run, a tree and a file's bytes at any ref. Read-only; the data comes from the repository's
 * storage node (git-server/repo-browse.ts).
 */

const REF_MESSAGE = 'ref must be a branch, tag or full commit id (git check-ref-format rules)';
/** A ref as git's own rules allow it (core/browse-input.ts refProblem), or a full commit id. */
export const browseRef = z
  .string({ error: REF_MESSAGE })
  .superRefine((ref, ctx) => {
    const problem = refProblem(ref);
    if (problem) ctx.addIssue({ code: 'custom', message: `ref ${JSON.stringify(ref.slice(0, 100))} ${problem}`, input: ref });
  })
  .meta({ description: 'a branch or tag name (release/1.x), or a full commit id; default: the default branch' });

/** `?ref=`: which commit to read; the repository's default branch when absent. */
export const refQuery = z.object({ ref: browseRef.optional() });

export const commitsQuery = refQuery.extend({
  limit: z
    .string()
    .regex(/^\d{1,3}$/, { error: `limit must be a whole number from 1 to ${MAX_COMMITS}` })
    .refine((v) => Number(v) >= 1 && Number(v) <= MAX_COMMITS, { error: `limit must be a whole number from 1 to ${MAX_COMMITS}` })
    .optional()
    .meta({ description: `1 to ${MAX_COMMITS}, default 30` }),
});

const PATH_MESSAGE = 'path must be a relative path without empty, "." or ".." components';
export const treePath = z
  .string({ error: PATH_MESSAGE })
  .superRefine((path, ctx) => {
    const problem = treePathProblem(path);
    if (problem) ctx.addIssue({ code: 'custom', message: `path ${problem}`, input: path });
  })
  .meta({ description: 'a path inside the tree (src/app.ts)' });

export const treePathParams = ownerRepoParams.extend({ path: treePath });

const refAnswer = z.object({
  name: z.string(),
  commit: z.string().meta({ description: 'the commit it names (an annotated tag peeled)' }),
  committedAt: timestamp.nullable(),
});
export const branchListAnswer = z
  .object({
    defaultBranch: z.string().nullable(),
    branches: z.array(refAnswer.extend({ default: z.boolean() })),
    truncated: z.boolean().meta({ description: 'true when more than the first 1000 (by name) exist' }),
  })
  .meta({ id: 'BranchList' });
export const tagListAnswer = z.object({ tags: z.array(refAnswer), truncated: z.boolean() }).meta({ id: 'TagList' });

const person = z.object({ name: z.string(), email: z.string(), date: z.string().meta({ description: 'ISO 8601 with the author’s offset' }) });
export const commitListAnswer = z
  .object({
    ref: z.string().meta({ description: 'the full ref read (refs/heads/main), or the commit id given' }),
    commit: z.string(),
    commits: z.array(
      z.object({
        sha: z.string(),
        parents: z.array(z.string()),
        author: person,
        committer: person,
        subject: z.string(),
        run: z
          .object({ id: z.string(), status: z.string(), ref: z.string(), attempt: z.number().int(), createdAt: timestamp })
          .nullable()
          .meta({ description: 'the commit’s latest pipeline run, if any' }),
      }),
    ),
  })
  .meta({ id: 'CommitList' });

const entryType = z.enum(['tree', 'blob', 'symlink', 'submodule']);
export const treeAnswer = z
  .object({
    ref: z.string(),
    commit: z.string(),
    path: z.string(),
    type: entryType.meta({ description: 'tree: a directory with entries; otherwise a file (its bytes at …/raw/{path})' }),
    mode: z.string(),
    sha: z.string(),
    size: z.number().int().nullable(),
    entries: z
      .array(z.object({ name: z.string(), path: z.string(), type: entryType, mode: z.string(), sha: z.string(), size: z.number().int().nullable() }))
      .nullable()
      .meta({ description: 'a directory’s entries, directories first; null for a file' }),
    truncated: z.boolean(),
  })
  .meta({ id: 'Tree' });

export type BranchListAnswer = z.infer<typeof branchListAnswer>;
export type TagListAnswer = z.infer<typeof tagListAnswer>;
export type CommitListAnswer = z.infer<typeof commitListAnswer>;
export type TreeAnswer = z.infer<typeof treeAnswer>;
