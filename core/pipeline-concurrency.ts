/**
 * `concurrency:` of a pipeline file (issue 17 item 4; ADR 0035): the schema, the check of its
 * `${{ … }}` expressions (with the line, by the parser) and the group's resolution when a run loads
 * its file. Pure code.
 */
import { z } from 'zod';
import { expressions, substitute } from './pipeline-matrix';

/** A resolved group name longer than this is refused (it becomes part of a workflow id). */
export const MAX_GROUP_LENGTH = 400;

/** `concurrency: "name"` or `concurrency: { group, cancel-in-progress }` (GitHub's two forms). */
export const concurrencySchema = z.union([
  z.string().min(1, 'the group must not be empty').max(MAX_GROUP_LENGTH),
  z.strictObject({
    group: z.string().min(1, 'the group must not be empty').max(MAX_GROUP_LENGTH),
    'cancel-in-progress': z.boolean().optional(),
  }),
]);

export interface ConcurrencySpec {
  /** The group as written, `${{ … }}` still in it. */
  group: string;
  cancelInProgress: boolean;
}

/** What a group's `${{ … }}` may name: the run's ref, its branch or tag name, commit, repository, event and inputs. */
export interface GroupContext {
  ref: string;
  commit: string;
  repo: string;
  event: string;
  inputs: Record<string, string>;
}

const SIMPLE = new Set(['ref', 'ref_name', 'commit', 'repo', 'event']);
const INPUT = /^inputs\.([A-Za-z0-9_-]+)$/;

const MATRIX = /^matrix\.([A-Za-z0-9_-]+)$/;

/**
 * The spec of the file's `concurrency:`, or a problem naming the expression the group may not use.
 * `matrix` (a matrix job's group only, ADR 0044): the keys its `${{ matrix.<key> }}` may name, or
 * 'any' for a matrix known at run time; each instance's group has them filled in.
 */
export function concurrencyOf(raw: z.infer<typeof concurrencySchema>, declaredInputs: Set<string>, matrix?: Set<string> | 'any'): ConcurrencySpec | { problem: string } {
  const spec = typeof raw === 'string' ? { group: raw, cancelInProgress: false } : { group: raw.group, cancelInProgress: raw['cancel-in-progress'] ?? false };
  if (/[\u0000-\u001f\u007f]/.test(spec.group)) return { problem: 'the group must not contain control characters' };
  for (const expr of expressions(spec.group)) {
    const input = INPUT.exec(expr);
    const key = MATRIX.exec(expr)?.[1];
    if (input && !declaredInputs.has(input[1])) return { problem: `\${{ ${expr} }}: no input "${input[1]}" is declared under on.manual.inputs` };
    if (key !== undefined && matrix !== undefined) {
      if (matrix !== 'any' && !matrix.has(key)) return { problem: `\${{ ${expr} }}: the matrix has no key "${key}"` };
      continue;
    }
    if (!input && !SIMPLE.has(expr)) return { problem: `\${{ ${expr} }}: a group may use \${{ ref }}, \${{ ref_name }}, \${{ commit }}, \${{ repo }}, \${{ event }}, \${{ inputs.<name> }}${matrix ? '' : ' (and a matrix job \${{ matrix.<key> }})'}` };
  }
  if (/\$\{\{/.test(substitute(spec.group, () => ''))) return { problem: 'an unclosed ${{ in the group' };
  return spec;
}

/** The group of a run: its expressions filled in (a value is never expanded again). */
export function resolveGroup(group: string, ctx: GroupContext): string {
  const refName = ctx.ref.replace(/^refs\/(heads|tags)\//, '');
  return substitute(group, (expr) => {
    if (expr === 'ref') return ctx.ref;
    if (expr === 'ref_name') return refName;
    if (expr === 'commit') return ctx.commit;
    if (expr === 'repo') return ctx.repo;
    if (expr === 'event') return ctx.event;
    const input = INPUT.exec(expr);
    return input && Object.hasOwn(ctx.inputs, input[1]) ? ctx.inputs[input[1]] : input ? '' : undefined;
  }).slice(0, MAX_GROUP_LENGTH);
}
