import { matchesPattern } from './pipeline-spec';

/** One protected-branch rule of a repository (CONTRACT: `PUT …/protections/{branch}`). */
export interface BranchProtection {
  /** A branch name or glob (`release/*`). */
  pattern: string;
  allowForcePush: boolean;
  allowDeletion: boolean;
  /** User names allowed to push; undefined = everyone with write access. */
  pushers?: string[];
}

export interface ProposedUpdate {
  ref: string;
  oldSha: string;
  newSha: string;
  /** Computed by the hook inside the push's quarantine: `git rev-list old ^new` is not empty. */
  nonFastForward: boolean;
}

const ZERO = /^0+$/;

/**
 * Why a ref update breaks a protection, or undefined when it is allowed. Pure: the pre-receive
 * hook gathers the facts (including the fast-forward check, done as Gitea does with
 * `rev-list old ^new`), this decides.
 */
export function protectionViolation(update: ProposedUpdate, rules: BranchProtection[], pusher: string): string | undefined {
  if (!update.ref.startsWith('refs/heads/')) return undefined;
  const branch = update.ref.slice('refs/heads/'.length);
  const rule = rules.find((r) => matchesPattern(r.pattern, branch));
  if (!rule) return undefined;
  if (rule.pushers && !rule.pushers.includes(pusher)) return `branch ${branch} is protected: ${pusher} may not push to it`;
  if (ZERO.test(update.newSha)) return rule.allowDeletion ? undefined : `branch ${branch} is protected: it cannot be deleted`;
  if (!ZERO.test(update.oldSha) && update.nonFastForward && !rule.allowForcePush) {
    return `branch ${branch} is protected: force-push (non-fast-forward) is not allowed`;
  }
  return undefined;
}
