import type { Db } from '../core/db';
import { InputError } from '../core/errors';
import type { BranchProtection, ProposedUpdate } from '../core/protections';
import { listProtections } from '../core/stores/repos-store';

/** The push a hook's request belongs to (its channel is that push's, ADR 0047): who pushed where, and its ids. */
export interface HookClaims {
  tenantId: number;
  tenant: string;
  repoId: number;
  repo: string;
  actor: string;
  pushId: string;
  /** The push request's id and trace id, so the hooks' log lines join the request's. */
  requestId?: string;
  traceId?: string;
  /** The receive-pack request's span (when tracing), which the hooks' work continues. */
  traceparent?: string;
}

const SHA = /^[0-9a-f]{40}$|^[0-9a-f]{64}$/;

/** The ref updates a hook sent, validated (the hook is ours, but its input came from the push). */
export function parseUpdates(raw: unknown): ProposedUpdate[] {
  if (!Array.isArray(raw) || raw.length > 10_000) throw new InputError('updates must be an array');
  return raw.map((u) => {
    const { oldSha, newSha, ref, nonFastForward } = (u ?? {}) as Record<string, unknown>;
    if (typeof ref !== 'string' || typeof oldSha !== 'string' || typeof newSha !== 'string' || !SHA.test(oldSha) || !SHA.test(newSha)) {
      throw new InputError('malformed ref update');
    }
    return { ref, oldSha, newSha, nonFastForward: nonFastForward === true };
  });
}

/**
 * Ref names git accepts but we refuse: a component starting with `-` reads as an option to every
 * tool that later gets the name on a command line.
 */
export function badRefName(ref: string): string | undefined {
  if (ref.split('/').some((part) => part.startsWith('-'))) return 'ref name components may not begin with "-"';
  return undefined;
}

/** A repository's protections, exact branch names before globs so the most specific rule wins. */
export async function loadProtections(db: Db, tenantId: number, repoId: number): Promise<BranchProtection[]> {
  return (await listProtections(db, tenantId, repoId))
    .map((row) => ({
      pattern: row.pattern,
      allowForcePush: row.allow_force_push,
      allowDeletion: row.allow_deletion,
      pushers: row.pushers ?? undefined,
    }))
    .sort((a, b) => Number(a.pattern.includes('*')) - Number(b.pattern.includes('*')) || b.pattern.length - a.pattern.length);
}
