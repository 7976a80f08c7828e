import { LineCounter, parseDocument, isMap, isSeq, type Node } from 'yaml';
import { z } from 'zod';

/** CONTRACT "Pipeline file": `.dotgit/pipeline.yml`. */
export const PIPELINE_PATH = '.dotgit/pipeline.yml';

/** Limits that keep one pipeline file from overwhelming the platform (history size, payloads). */
export const MAX_PIPELINE_FILE_BYTES = 256 * 1024;
const MAX_JOBS = 100;
const MAX_STEPS = 100;
/** A step may run at most this long; the activity's own limit sits above it (workflows/pipeline.ts). */
export const MAX_STEP_TIMEOUT_MS = 2 * 60 * 60 * 1000;

const duration = z
  .union([z.number().int().positive(), z.string().regex(/^\d+(ms|s|m|h)$/, 'a duration such as 30s, 5m or 1h')])
  .transform((v) => (typeof v === 'number' ? v * 1000 : parseDuration(v)))
  .refine((ms) => ms <= MAX_STEP_TIMEOUT_MS, 'at most 2h');

const stepSchema = z.strictObject({
  name: z.string().min(1).max(100).regex(/^[^\x00-\x1f/]+$/, 'no control characters or "/"').optional(),
  run: z.string().min(1, 'run must not be empty').max(64 * 1024),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'), z.union([z.string(), z.number(), z.boolean()]).transform(String)).optional(),
  timeout: duration.optional(),
  retry: z.number().int().min(0).max(10).optional(),
});

const jobSchema = z.strictObject({
  needs: z.array(z.string()).optional(),
  steps: z.array(stepSchema).min(1, 'a job needs at least one step').max(MAX_STEPS, `at most ${MAX_STEPS} steps per job`),
  artifacts: z.array(z.string().min(1)).optional(),
  secrets: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/)).optional(),
  network: z.enum(['none', 'isolated']).optional(),
});

/** Environment names (deploy targets, per-environment secrets). */
export const ENVIRONMENT_NAME = /^[A-Za-z0-9_-]{1,64}$/;

const environmentSchema = z.strictObject({
  approval: z.boolean().optional(),
  deploy: z.array(stepSchema).min(1, 'an environment needs at least one deploy step').max(MAX_STEPS, `at most ${MAX_STEPS} steps`),
  rollback: z.array(stepSchema).max(MAX_STEPS, `at most ${MAX_STEPS} steps`).optional(),
  secrets: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/)).optional(),
  network: z.enum(['none', 'isolated']).optional(),
});

const patterns = z.array(z.string().min(1).max(255)).max(100);
const fileSchema = z.strictObject({
  on: z
    .strictObject({ push: z.strictObject({ branches: patterns.optional(), tags: patterns.optional() }).nullish() })
    .optional(),
  jobs: z
    .record(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'job names use letters, digits, _ and -'), jobSchema)
    .refine((jobs) => Object.keys(jobs).length <= MAX_JOBS, `at most ${MAX_JOBS} jobs`),
  environments: z.record(z.string().regex(ENVIRONMENT_NAME, 'environment names use letters, digits, _ and -'), environmentSchema).optional(),
});

export interface StepSpec {
  name: string;
  run: string;
  env: Record<string, string>;
  timeoutMs?: number;
  retry: number;
}
export interface JobSpec {
  name: string;
  needs: string[];
  steps: StepSpec[];
  artifacts: string[];
  secrets: string[];
  network: 'none' | 'isolated';
}
/** A deploy target: its steps, the steps that undo a failed deploy, and whether a person must approve first. */
export interface EnvironmentSpec {
  name: string;
  approval: boolean;
  deploy: StepSpec[];
  rollback: StepSpec[];
  secrets: string[];
  network: 'none' | 'isolated';
}
export interface PipelineSpec {
  on: { push: { branches?: string[]; tags?: string[] } };
  jobs: JobSpec[];
  environments?: EnvironmentSpec[];
}

/** Thrown when the pipeline file is not valid; the message names line, column and problem. */
export class PipelineSpecError extends Error {
  override readonly name = 'PipelineSpecError';
  constructor(message: string, readonly line?: number, readonly column?: number) {
    super(message);
  }
}

export function parseDuration(text: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(text);
  if (!m) throw new PipelineSpecError(`invalid duration ${text}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * unit;
}

function nodeAt(root: Node | null, path: PropertyKey[]): Node | null {
  let node: Node | null = root;
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === key);
      if (!pair) return node;
      node = (pair.value as Node | null) ?? (pair.key as Node);
    } else if (isSeq(node) && typeof key === 'number') {
      const item = node.items[key] as Node | undefined;
      if (!item) return node;
      node = item;
    } else return node;
  }
  return node;
}

/** Parses and validates a pipeline file. Throws PipelineSpecError with line and column. */
export function parsePipeline(text: string): PipelineSpec {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const pos = e.linePos?.[0];
    throw new PipelineSpecError(`${PIPELINE_PATH}:${pos?.line ?? 1}:${pos?.col ?? 1}: ${e.message.split('\n')[0]}`, pos?.line, pos?.col);
  }
  const parsed = fileSchema.safeParse(doc.toJS());
  if (!parsed.success) {
    // An unknown key (often a typo) explains a missing required one, so it is reported first.
    const issue = parsed.error.issues.find((i) => i.code === 'unrecognized_keys') ?? parsed.error.issues[0];
    const node = nodeAt(doc.contents as Node | null, issue.path);
    const pos = node?.range ? lineCounter.linePos(node.range[0]) : { line: 1, col: 1 };
    const where = issue.path.length ? issue.path.join('.') : '(file)';
    // A bad record key (job or environment name) carries the rule it broke one level down.
    const inner = issue.code === 'invalid_key' ? (issue as { issues?: { message: string }[] }).issues?.[0]?.message : undefined;
    const message = inner ? `${issue.message}: ${inner}` : issue.message;
    throw new PipelineSpecError(`${PIPELINE_PATH}:${pos.line}:${pos.col}: ${where}: ${message}`, pos.line, pos.col);
  }
  type RawStep = z.infer<typeof stepSchema>;
  const toSteps = (steps: RawStep[]): StepSpec[] =>
    steps.map((s, i) => ({ name: s.name ?? `step-${i + 1}`, run: s.run, env: s.env ?? {}, timeoutMs: s.timeout, retry: s.retry ?? 0 }));
  const jobs: JobSpec[] = Object.entries(parsed.data.jobs).map(([name, job]) => ({
    name,
    needs: job.needs ?? [],
    steps: toSteps(job.steps),
    artifacts: job.artifacts ?? [],
    secrets: job.secrets ?? [],
    network: job.network ?? 'none',
  }));
  checkJobs(jobs, doc.contents as Node | null, lineCounter);
  const environments: EnvironmentSpec[] = Object.entries(parsed.data.environments ?? {}).map(([name, e]) => ({
    name,
    approval: e.approval ?? false,
    deploy: toSteps(e.deploy),
    rollback: toSteps(e.rollback ?? []),
    secrets: e.secrets ?? [],
    network: e.network ?? 'none',
  }));
  for (const env of environments) {
    for (const part of ['deploy', 'rollback'] as const) {
      const seen = new Set<string>();
      env[part].forEach((st, i) => {
        if (seen.has(st.name)) failAt(doc.contents as Node | null, lineCounter, ['environments', env.name, part, i, 'name'], `duplicate step name "${st.name}"`);
        seen.add(st.name);
      });
    }
  }
  const spec: PipelineSpec = { on: { push: { branches: parsed.data.on?.push?.branches, tags: parsed.data.on?.push?.tags } }, jobs };
  // Only present when the file has environments, so pipeline activity results stay as they were.
  if (environments.length > 0) spec.environments = environments;
  return spec;
}

function failAt(root: Node | null, lc: LineCounter, path: PropertyKey[], msg: string): never {
  const node = nodeAt(root, path);
  const pos = node?.range ? lc.linePos(node.range[0]) : { line: 1, col: 1 };
  throw new PipelineSpecError(`${PIPELINE_PATH}:${pos.line}:${pos.col}: ${path.join('.')}: ${msg}`, pos.line, pos.col);
}

function checkJobs(jobs: JobSpec[], root: Node | null, lc: LineCounter): void {
  const fail = (path: PropertyKey[], msg: string): never => failAt(root, lc, path, msg);
  const names = new Set(jobs.map((j) => j.name));
  for (const job of jobs) {
    job.needs.forEach((n, i) => {
      if (!names.has(n)) fail(['jobs', job.name, 'needs', i], `unknown job "${n}"`);
    });
    const seen = new Set<string>();
    job.steps.forEach((s, i) => {
      if (seen.has(s.name)) fail(['jobs', job.name, 'steps', i, 'name'], `duplicate step name "${s.name}"`);
      seen.add(s.name);
    });
    job.artifacts.forEach((a, i) => {
      if (a.startsWith('/') || a.split('/').includes('..')) fail(['jobs', job.name, 'artifacts', i], 'artifact paths are relative to the workspace, without ".."');
    });
  }
  // Cycle check by repeatedly removing jobs whose needs are all satisfied.
  const done = new Set<string>();
  let progress = true;
  while (progress) {
    progress = false;
    for (const j of jobs) {
      if (!done.has(j.name) && j.needs.every((n) => done.has(n))) {
        done.add(j.name);
        progress = true;
      }
    }
  }
  const stuck = jobs.find((j) => !done.has(j.name));
  if (stuck) fail(['jobs', stuck.name, 'needs'], `jobs form a cycle through "${stuck.name}"`);
}

/**
 * Glob match for branch/tag filters: `*` matches within a path segment, `**` across segments.
 * Dynamic programming over (pattern token, name position): O(pattern × name) whatever the input,
 * because the pattern comes from users and a backtracking matcher can be made to take forever.
 */
export function matchesPattern(pattern: string, name: string): boolean {
  type Token = { kind: 'star' | 'globstar' } | { kind: 'char'; c: string };
  const tokens: Token[] = [];
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === '*') {
      const globstar = pattern[i + 1] === '*';
      if (globstar) while (pattern[i + 1] === '*') i++;
      tokens.push({ kind: globstar ? 'globstar' : 'star' });
    } else tokens.push({ kind: 'char', c: pattern[i] });
  }
  // reach[j]: the tokens so far can match exactly name[0..j).
  let reach = new Array<boolean>(name.length + 1).fill(false);
  reach[0] = true;
  for (const t of tokens) {
    const next = new Array<boolean>(name.length + 1).fill(false);
    for (let j = 0; j <= name.length; j++) {
      if (t.kind === 'char') next[j] = j > 0 && reach[j - 1] && name[j - 1] === t.c;
      else next[j] = reach[j] || (j > 0 && next[j - 1] && (t.kind === 'globstar' || name[j - 1] !== '/'));
    }
    reach = next;
  }
  return reach[name.length];
}

/** Whether a push to `ref` triggers this pipeline (default: every branch, no tags). */
export function triggersOnPush(spec: Pick<PipelineSpec, 'on'>, ref: string): boolean {
  const { branches, tags } = spec.on.push;
  if (ref.startsWith('refs/heads/')) {
    const b = ref.slice('refs/heads/'.length);
    return branches === undefined ? true : branches.some((p) => matchesPattern(p, b));
  }
  if (ref.startsWith('refs/tags/')) {
    const t = ref.slice('refs/tags/'.length);
    return tags !== undefined && tags.some((p) => matchesPattern(p, t));
  }
  return false;
}
