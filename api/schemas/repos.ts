import { z } from 'zod';
import { nameField, nextPage, pageQuery, timestamp } from './common';

/** Repositories: creation, the repository answer, and changes to it (PATCH). */

export const createRepoBody = z.strictObject({
  owner: nameField('owner'),
  name: nameField('name'),
  visibility: z
    .enum(['public', 'private'], { error: 'visibility must be public or private' })
    .nullish()
    .transform((v) => v ?? 'private'),
});

const BRANCH_MESSAGE = 'defaultBranch must be a branch name: 1 to 255 characters, no spaces or control characters, not starting with "-"';
/** A branch name as a user gives it; the git-server applies git's own rules (check-ref-format). */
export const branchField = z
  .string({ error: BRANCH_MESSAGE })
  .min(1, { error: BRANCH_MESSAGE })
  .max(255, { error: BRANCH_MESSAGE })
  .regex(/^(?!-)(?!refs\/)[^\x00-\x20\x7f~^:?*[\\]+$/, { error: BRANCH_MESSAGE })
  .meta({ description: 'a branch name without refs/heads/ (main, release/1.x)' });

/** `PATCH /api/v1/repos/{owner}/{repo}` (repository admins): what to change; every field optional. */
export const patchRepoBody = z.strictObject({
  defaultBranch: branchField.optional().meta({ description: 'an existing branch to make the default (HEAD: what clones check out); 404 when the repository has no such branch' }),
});

export const repoAnswer = z
  .object({
    owner: z.string(),
    name: z.string(),
    visibility: z.enum(['public', 'private']),
    defaultBranch: z.string().meta({ description: 'the branch HEAD names: the first branch pushed, or the one set with PATCH' }),
    cloneUrl: z.string(),
    createdAt: timestamp,
    node: z.string().nullable().meta({ description: 'the storage node holding it (ADR 0014)' }),
    replicas: z.array(z.string()).meta({ description: 'storage nodes holding a replica' }),
  })
  .meta({ id: 'Repository' });

/** `GET /api/v1/repos`: the repositories the caller may read, a page at a time. */
export const listReposQuery = pageQuery.extend({
  owner: nameField('owner').optional().meta({ description: 'only this tenant’s repositories (an unknown or hidden tenant lists none)' }),
});
export const repoListAnswer = z.object({ repos: z.array(repoAnswer), next: nextPage });

export type CreateRepoBody = z.input<typeof createRepoBody>;
export type PatchRepoBody = z.input<typeof patchRepoBody>;
export type RepoAnswer = z.infer<typeof repoAnswer>;
export type RepoListAnswer = z.infer<typeof repoListAnswer>;
