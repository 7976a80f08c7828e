/**
 * Build matrices and `${{ … }}` substitution of pipeline files (issue 17, items 1 and 2). Pure code:
 * the parser expands matrices with it, and the pipeline workflow resolves outputs with it
 * (deterministic, so it may run inside a workflow).
 */

/** A matrix expanding to more job instances than this is refused when the file is parsed. */
export const MAX_MATRIX_COMBINATIONS = 256;
/** What a step may write to `$DOTGIT_OUTPUT`; more is ignored (the values travel in Temporal's history). */
export const MAX_STEP_OUTPUT_BYTES = 64 * 1024;

/** One combination: axis (or include key) → value, in the matrix's key order. */
export type MatrixCombination = Record<string, string>;

export interface MatrixDefinition {
  axes: Record<string, string[]>;
  include: MatrixCombination[];
  exclude: MatrixCombination[];
}

/** Thrown for a matrix that expands to nothing or to too much; the parser adds the line. */
export class MatrixError extends Error {
  override readonly name = 'MatrixError';
}

/**
 * The combinations of a matrix, with GitHub Actions' semantics: the product of the axes (first axis
 * outermost), minus every combination an `exclude` entry matches (all of its keys equal), then each
 * `include` entry is added to every combination whose original axis values it matches, without
 * overwriting any of them (values added by an earlier include may be overwritten); an entry that
 * matches none becomes a combination of its own.
 */
export function expandMatrix(m: MatrixDefinition): MatrixCombination[] {
  const axes = Object.entries(m.axes);
  for (const [axis, values] of axes) if (values.length === 0) throw new MatrixError(`axis "${axis}" has no values`);
  // Counted before building anything, so a hostile 100×100×100 matrix costs nothing.
  const product = axes.reduce((n, [, values]) => n * values.length, 1);
  if (axes.length > 0 && product > MAX_MATRIX_COMBINATIONS * 4) {
    throw new MatrixError(`the axes make ${product} combinations; at most ${MAX_MATRIX_COMBINATIONS} are allowed`);
  }
  let combos: MatrixCombination[] = axes.length === 0 ? [] : [{}];
  for (const [axis, values] of axes) combos = combos.flatMap((c) => values.map((v) => ({ ...c, [axis]: v })));
  const matches = (combo: MatrixCombination, entry: MatrixCombination, keys: string[]) => keys.every((k) => combo[k] === entry[k]);
  combos = combos.filter((c) => !m.exclude.some((e) => matches(c, e, Object.keys(e))));
  const original = combos.map((c) => ({ ...c }));
  const axisNames = new Set(Object.keys(m.axes));
  const added: MatrixCombination[] = [];
  for (const entry of m.include) {
    const axisKeys = Object.keys(entry).filter((k) => axisNames.has(k));
    let merged = false;
    combos.forEach((combo, i) => {
      if (!matches(original[i], entry, axisKeys)) return;
      for (const [k, v] of Object.entries(entry)) if (!axisNames.has(k)) combo[k] = v;
      merged = true;
    });
    if (!merged) added.push({ ...entry });
  }
  const all = [...combos, ...added];
  if (all.length === 0) throw new MatrixError('the matrix has no combinations left (every one is excluded)');
  if (all.length > MAX_MATRIX_COMBINATIONS) throw new MatrixError(`the matrix makes ${all.length} combinations; at most ${MAX_MATRIX_COMBINATIONS} are allowed`);
  return all;
}

/**
 * A matrix job instance's name: the job's name and the combination's values, `test (18, pg)`, as
 * GitHub Actions shows them. A "/" in a value becomes "-" (names become workspace directories).
 */
export function instanceName(job: string, combo: MatrixCombination): string {
  return `${job} (${Object.values(combo).map((v) => v.replace(/\//g, '-')).join(', ')})`;
}

/** The environment variable of a matrix key: `MATRIX_` and the key upper-cased, other characters as `_`. */
export function matrixEnvName(key: string): string {
  return `MATRIX_${key.toUpperCase().replace(/[^A-Z0-9_]/g, '_')}`;
}

const EXPRESSION = /\$\{\{\s*([^{}]*?)\s*\}\}/g;

/**
 * Replaces each `${{ expr }}` whose `resolve(expr)` answers a string; the others stay as written
 * (another stage, or nobody, resolves them).
 */
export function substitute(text: string, resolve: (expr: string) => string | undefined): string {
  return text.replace(EXPRESSION, (whole, expr: string) => resolve(expr) ?? whole);
}

/** Every `${{ expr }}` in `text`, trimmed. */
export function expressions(text: string): string[] {
  return [...text.matchAll(EXPRESSION)].map((m) => m[1]);
}

const MATRIX_REF = /^matrix\.([A-Za-z0-9_-]+)$/;
const STEPS_REF = /^steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)$/;
const NEEDS_REF = /^needs\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)$/;

/** A reference to a matrix value, a step's output or a needed job's output; undefined for anything else. */
export type Reference = { kind: 'matrix'; key: string } | { kind: 'steps'; id: string; key: string } | { kind: 'needs'; job: string; key: string };

export function parseReference(expr: string): Reference | undefined {
  let m = MATRIX_REF.exec(expr);
  if (m) return { kind: 'matrix', key: m[1] };
  m = STEPS_REF.exec(expr);
  if (m) return { kind: 'steps', id: m[1], key: m[2] };
  m = NEEDS_REF.exec(expr);
  if (m) return { kind: 'needs', job: m[1], key: m[2] };
  return undefined;
}

/** What `steps.*` and `needs.*` references resolve to while a job runs; a missing output is empty, as in GitHub Actions. */
export interface OutputContext {
  steps?: Record<string, Record<string, string>>;
  needs?: Record<string, Record<string, string>>;
}

/** `obj[key]` only when it is the object's own (never `constructor`, `toString`…). */
function own<T>(obj: Record<string, T> | undefined, key: string): T | undefined {
  return obj && Object.hasOwn(obj, key) ? obj[key] : undefined;
}

export function resolveOutputs(text: string, ctx: OutputContext): string {
  return substitute(text, (expr) => {
    const ref = parseReference(expr);
    if (ref?.kind === 'steps' && ctx.steps) return own(own(ctx.steps, ref.id), ref.key) ?? '';
    if (ref?.kind === 'needs' && ctx.needs) return own(own(ctx.needs, ref.job), ref.key) ?? '';
    return undefined;
  });
}

const OUTPUT_KEY = /^[A-Za-z_][A-Za-z0-9_-]{0,127}$/;

/**
 * The outputs a step wrote to `$DOTGIT_OUTPUT`: `key=value` lines, or GitHub's multi-line form
 * `key<<DELIM`, the value's lines, then `DELIM` alone. Later keys win. Lines that are neither are
 * answered in `problems` (the step's log says so) rather than failing the step.
 */
export function parseOutputFile(text: string): { outputs: Record<string, string>; problems: string[] } {
  // A Map, so a key such as `__proto__` is a key like any other.
  const outputs = new Map<string, string>();
  const problems: string[] = [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, '');
    if (line === '') continue;
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    const eq = line.indexOf('=');
    const key = heredoc ? heredoc[1] : eq > 0 ? line.slice(0, eq) : undefined;
    if (key === undefined || !OUTPUT_KEY.test(key)) {
      problems.push(`line ${i + 1}: not key=value with a key of letters, digits, _ and - (ignored)`);
      continue;
    }
    if (!heredoc) {
      outputs.set(key, line.slice(eq + 1));
      continue;
    }
    const end = lines.findIndex((l, j) => j > i && l.replace(/\r$/, '') === heredoc[2]);
    if (end < 0) {
      problems.push(`line ${i + 1}: ${key}<<${heredoc[2]} has no closing ${heredoc[2]} line (ignored)`);
      break;
    }
    outputs.set(key, lines.slice(i + 1, end).map((l) => l.replace(/\r$/, '')).join('\n'));
    i = end;
  }
  return { outputs: Object.fromEntries(outputs), problems };
}
