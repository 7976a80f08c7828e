/**
 * Issue 17 items 6 and 7, the pipeline file's side: `on: schedule:` (cron entries, each a Temporal
 * Schedule of the default branch), `on: manual: inputs:` (typed inputs of hand-started runs,
 * `${{ inputs.<name> }}` and INPUT_<NAME>), and `id-token:` on jobs and environments. The parser
 * (core/pipeline-spec.ts) uses the schemas and checks here; the api validates a run's inputs with
 * `resolveInputs`, and the pipeline's loading activity fills them in with `applyInputs`.
 */
import { Cron } from 'croner';
import { z } from 'zod';
import { expressions, substitute } from './pipeline-matrix';

/** At most this many `schedule:` entries per file (each one is a Temporal Schedule). */
export const MAX_SCHEDULES = 10;
/** At most this many declared inputs. */
export const MAX_INPUTS = 50;
/** An input's value as text (what `${{ inputs.x }}` and INPUT_X hold) is at most this long. */
export const MAX_INPUT_LENGTH = 4096;
const INPUT_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
const INPUT_TYPES = ['string', 'choice', 'boolean', 'number'] as const;
export type InputType = (typeof INPUT_TYPES)[number];

const scalar = z.union([z.string().max(MAX_INPUT_LENGTH), z.number(), z.boolean()]);

const inputSchema = z.strictObject({
  type: z.enum(INPUT_TYPES).optional(),
  description: z.string().max(1024).optional(),
  required: z.boolean().optional(),
  default: scalar.optional(),
  options: z.array(z.union([z.string().max(MAX_INPUT_LENGTH), z.number()]).transform(String)).min(1).max(100).optional(),
});

/** An audience: what the token's `aud` names (a cloud's workload-identity pool, `sts.amazonaws.com`, …). */
const audience = z.string().min(1).max(255).regex(/^[^\s\x00-\x1f\x7f]+$/, 'an audience has no spaces or control characters');
/** `id-token: true`, or `id-token: { audience: "…" | ["…", …] }`. */
export const idTokenSchema = z.union([z.boolean(), z.strictObject({ audience: z.union([audience, z.array(audience).min(1).max(10)]) })]);

/** `requires: [pipeline]` on an environment: a deploy needs a successful run of the commit. */
export const requiresSchema = z.array(z.enum(['pipeline'])).max(1);

/** The `on:` map: `push` as the parser gives it, plus `schedule` and `manual`. */
export function onSchema<P extends z.ZodType>(push: P) {
  return z.strictObject({
    push: push.optional(),
    schedule: z.array(z.strictObject({ cron: z.string().min(1).max(255) })).min(1).max(MAX_SCHEDULES, `at most ${MAX_SCHEDULES} schedules`).optional(),
    manual: z
      .strictObject({
        inputs: z
          .record(z.string().regex(INPUT_NAME, 'an input name (letters, digits, _ and -, not starting with a digit or -)'), inputSchema)
          .refine((i) => Object.keys(i).length <= MAX_INPUTS, `at most ${MAX_INPUTS} inputs`)
          .optional(),
      })
      .nullish(),
  });
}

export interface InputSpec {
  type: InputType;
  required: boolean;
  description?: string;
  /** As text (booleans `true`/`false`, numbers as written). */
  default?: string;
  /** A choice's allowed values. */
  options?: string[];
}

export interface IdTokenSpec {
  /** The `aud` the token carries; absent: the default (the repository's URL, as GitHub does with its owner's). */
  audience?: string[];
}

/** What the parser keeps of `on:` besides `push` (only what the file has). */
export interface TriggerSpec {
  schedule?: { cron: string }[];
  manual?: { inputs: Record<string, InputSpec> };
}

type RawOn = z.infer<ReturnType<typeof onSchema>> | undefined;

/**
 * The standard five fields (minute hour day-of-month month day-of-week, with names, ranges, steps
 * and lists) or @hourly/@daily/@weekly/@monthly/@yearly: what both croner and Temporal's schedule
 * specs read the same way. Answers the problem, or undefined when the cron is valid.
 */
export function cronProblem(cron: string): string | undefined {
  const text = cron.trim();
  if (!text.startsWith('@') && text.split(/\s+/).length !== 5) return `"${cron}" is not a cron expression of five fields (minute hour day-of-month month day-of-week)`;
  if (text.startsWith('@') && !['@hourly', '@daily', '@weekly', '@monthly', '@yearly', '@annually'].includes(text)) return `"${cron}": only @hourly, @daily, @weekly, @monthly and @yearly are known`;
  try {
    new Cron(text, { paused: true });
    return undefined;
  } catch (err) {
    return `"${cron}" does not parse: ${(err as Error).message.replace(/^CronPattern: /, '')}`;
  }
}

const INPUTS_REF = /^inputs\.([A-Za-z0-9_-]+)$/;

/**
 * Checks `on:` and `${{ inputs.* }}` references of the jobs' steps; `fail(path, message)` throws
 * with the line. `pushDisabled`: the file lists `schedule` or `manual` but not `push`, so pushes start
 * no run (GitHub's meaning of such an `on:`).
 */
export function checkTriggers(
  on: RawOn,
  jobs: { name: string; steps: { run: string; env: Record<string, string> }[] }[],
  fail: (path: PropertyKey[], message: string) => never,
): { on: TriggerSpec; pushDisabled: boolean } {
  const out: TriggerSpec = {};
  on?.schedule?.forEach((entry, i) => {
    const problem = cronProblem(entry.cron);
    if (problem) fail(['on', 'schedule', i, 'cron'], problem);
  });
  if (on?.schedule) out.schedule = on.schedule.map((e) => ({ cron: e.cron.trim() }));
  const inputs: Record<string, InputSpec> = {};
  for (const [name, raw] of Object.entries(on?.manual?.inputs ?? {})) {
    const type = raw.type ?? 'string';
    const at = ['on', 'manual', 'inputs', name];
    if (raw.options && type !== 'choice') fail([...at, 'options'], 'options are for inputs of type choice');
    if (type === 'choice' && !raw.options) fail(at, 'an input of type choice needs options');
    let def: string | undefined;
    if (raw.default !== undefined) {
      const problem = valueProblem({ type, required: false, options: raw.options }, raw.default);
      if (problem) fail([...at, 'default'], `the default ${problem}`);
      def = String(raw.default);
    }
    inputs[name] = { type, required: raw.required ?? false, ...(raw.description ? { description: raw.description } : {}), ...(def !== undefined ? { default: def } : {}), ...(raw.options ? { options: raw.options } : {}) };
  }
  if (on && 'manual' in on) out.manual = { inputs };
  for (const job of jobs) {
    job.steps.forEach((step, i) => {
      const texts: [string, PropertyKey[]][] = [[step.run, ['jobs', job.name, 'steps', i, 'run']], ...Object.entries(step.env).map(([k, v]): [string, PropertyKey[]] => [v, ['jobs', job.name, 'steps', i, 'env', k]])];
      for (const [text, path] of texts) {
        for (const expr of expressions(text)) {
          const m = INPUTS_REF.exec(expr);
          if (m && !Object.hasOwn(inputs, m[1])) fail(path, `\${{ ${expr} }}: no input "${m[1]}" is declared under on.manual.inputs`);
        }
      }
    });
  }
  const pushDisabled = !!on && on.push === undefined && (on.schedule !== undefined || 'manual' in on);
  return { on: out, pushDisabled };
}

/** What is wrong with `value` for an input (or undefined): "must be a number", "must be one of a, b". */
function valueProblem(input: Pick<InputSpec, 'type' | 'options' | 'required'>, value: unknown): string | undefined {
  switch (input.type) {
    case 'boolean':
      return typeof value === 'boolean' || value === 'true' || value === 'false' ? undefined : 'must be true or false';
    case 'number':
      return (typeof value === 'number' && Number.isFinite(value)) || (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) ? undefined : 'must be a number';
    case 'choice':
      return (typeof value === 'string' || typeof value === 'number') && input.options?.includes(String(value)) ? undefined : `must be one of ${input.options?.join(', ')}`;
    default:
      if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') return 'must be a string';
      return String(value).length > MAX_INPUT_LENGTH ? `must be at most ${MAX_INPUT_LENGTH} characters` : undefined;
  }
}

/** A run's inputs refused: the message names the input. */
export class InputValueError extends Error {
  override readonly name = 'InputValueError';
}

/**
 * The values of a run's inputs, as text: each given value checked against its declaration, defaults
 * for the others; an unknown or missing required input, or a value of the wrong type, throws
 * InputValueError naming it. Runs not started by hand (push, schedule) get the defaults.
 */
export function resolveInputs(declared: Record<string, InputSpec> | undefined, given: Record<string, unknown> = {}): Record<string, string> {
  const inputs = declared ?? {};
  for (const name of Object.keys(given)) {
    if (!Object.hasOwn(inputs, name)) {
      const known = Object.keys(inputs);
      throw new InputValueError(`input "${name}" is not declared in on.manual.inputs (${known.length ? `declared: ${known.join(', ')}` : 'the file declares none'})`);
    }
  }
  const values: Record<string, string> = {};
  for (const [name, input] of Object.entries(inputs)) {
    const value = Object.hasOwn(given, name) ? given[name] : undefined;
    if (value === undefined || value === null) {
      if (input.required && input.default === undefined) throw new InputValueError(`input "${name}" is required`);
      if (input.default !== undefined) values[name] = input.default;
      else if (input.type === 'boolean') values[name] = 'false';
      else values[name] = '';
      continue;
    }
    const problem = valueProblem(input, value);
    if (problem) throw new InputValueError(`input "${name}" ${problem}`);
    values[name] = typeof value === 'string' && input.type === 'number' ? String(Number(value)) : String(value);
  }
  return values;
}

/** The inputs of a run not started by hand (push, schedule): each default, or empty (`false` for a boolean). */
export function defaultInputs(declared: Record<string, InputSpec>): Record<string, string> {
  return Object.fromEntries(Object.entries(declared).map(([name, input]) => [name, input.default ?? (input.type === 'boolean' ? 'false' : '')]));
}

/** INPUT_<NAME> of an input: upper-cased, other characters `_` (as MATRIX_<KEY>). */
export function inputEnvName(name: string): string {
  return `INPUT_${name.toUpperCase().replace(/[^A-Z0-9_]/g, '_')}`;
}

/**
 * The jobs with `${{ inputs.<name> }}` filled in (in `run` and `env`) and each input as INPUT_<NAME>
 * (a step's own `env` wins). Values are pasted as they are: pass untrusted ones through `env:`.
 */
export function applyInputs<J extends { steps: { run: string; env: Record<string, string> }[] }>(jobs: J[], values: Record<string, string>): J[] {
  if (Object.keys(values).length === 0) return jobs;
  const fill = (text: string) =>
    substitute(text, (expr) => {
      const m = INPUTS_REF.exec(expr);
      return m && Object.hasOwn(values, m[1]) ? values[m[1]] : undefined;
    });
  const env = Object.fromEntries(Object.entries(values).map(([k, v]) => [inputEnvName(k), v]));
  return jobs.map((job) => ({ ...job, steps: job.steps.map((st) => ({ ...st, run: fill(st.run), env: { ...env, ...Object.fromEntries(Object.entries(st.env).map(([k, v]) => [k, fill(v)])) } })) }));
}
