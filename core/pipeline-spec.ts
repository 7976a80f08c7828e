import { Composer, LineCounter, Parser, isAlias, isCollection, isMap, isNode, isPair, isScalar, isSeq, type CST, type Document, type Node } from 'yaml';
import { z } from 'zod';
import { cacheOf, cacheProblem, cacheSchema, type CacheSpec } from './pipeline-cache';
import { MatrixError, expandMatrix, expressions, instanceName, matrixEnvName, parseReference, substitute, type MatrixCombination } from './pipeline-matrix';
import { MAX_GROUP_LENGTH, concurrencyOf, concurrencySchema, type ConcurrencySpec } from './pipeline-concurrency';
import { checkTriggers, idTokenSchema, onSchema, requiresSchema, type IdTokenSpec, type TriggerSpec } from './pipeline-triggers';

/** CONTRACT "Pipeline file": `.dotgit/pipeline.yml`. */
export const PIPELINE_PATH = '.dotgit/pipeline.yml';

/** Limits that keep one pipeline file from overwhelming the platform (history size, payloads). */
export const MAX_PIPELINE_FILE_BYTES = 256 * 1024;
const MAX_JOBS = 100;
const MAX_STEPS = 100;
/** A step may run at most this long; the activity's own limit sits above it (workflows/pipeline.ts). */
export const MAX_STEP_TIMEOUT_MS = 2 * 60 * 60 * 1000;
/** A timeout under a second could only cut a step off while its sandbox starts: refused as a mistake. */
export const MIN_STEP_TIMEOUT_MS = 1000;
/**
 * Limits on the YAML itself, checked before anything is built from it, so a hostile file (alias
 * bomb, deep nesting) costs little and fails with a line. Each is far above what a real file needs.
 */
export const YAML_LIMITS = {
  /** Collection nesting; the deepest legal path (jobs.x.steps.0.env.X) is 6 levels. */
  depth: 32,
  anchors: 100,
  aliases: 1000,
  /** The file's size with every alias replaced by what it names (billion laughs stops here). */
  expandedBytes: 512 * 1024,
} as const;
/** Per step / per job list limits. */
const MAX_ENV_VARS = 100;
const MAX_LIST = 100;

/** C0 controls and DEL other than tab and newline: a NUL cuts a command short, the rest only hide what runs. */
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/;
const noControls = (s: string, ctx: z.RefinementCtx) => {
  const c = CONTROL.exec(s);
  if (c) ctx.addIssue({ code: 'custom', message: `control character U+${c[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')} at offset ${c.index}; only tab and newline are allowed` });
};
const plainText = (max: number) => z.string().max(max).superRefine(noControls);

/**
 * Names every JavaScript object already answers to (`__proto__`, `constructor`, `toString`…):
 * a job or environment with one of them would vanish or collide wherever names key an object.
 */
const RESERVED_NAMES = new Set([...Object.getOwnPropertyNames(Object.prototype), 'prototype']);
const notReserved = (n: string) => !RESERVED_NAMES.has(n);
const reservedMessage = 'is reserved (a name every JavaScript object carries)';
const JOB_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** Step ids, output names and matrix keys (what `${{ steps.<id>.outputs.<name> }}` and `${{ matrix.<key> }}` name). */
const REF_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
/** Matrix jobs expand into instances; all of a file's jobs, instances counted, stay under this. */
const MAX_JOB_INSTANCES = 256;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,254}$/;

const duration = z
  .union([z.number(), z.string().regex(/^\d+(ms|s|m|h)$/, 'a duration such as 30s, 5m or 1h')])
  .transform((v) => (typeof v === 'number' ? v * 1000 : parseDuration(v)))
  .pipe(z.number().min(MIN_STEP_TIMEOUT_MS, 'at least 1s').max(MAX_STEP_TIMEOUT_MS, 'at most 2h'));

const stepSchema = z.strictObject({
  id: z.string().regex(REF_NAME, 'a step id (letters, digits, _ and -, not starting with a digit or -)').optional(),
  name: z.string().min(1).max(100).regex(/^[^\x00-\x1f\x7f/]+$/, 'no control characters or "/"').optional(),
  run: plainText(64 * 1024).min(1, 'run must not be empty'),
  env: z
    .record(
      z.string().regex(ENV_NAME, 'an environment variable name (letters, digits and _, not starting with a digit)'),
      z.union([z.string(), z.number(), z.boolean()]).transform(String).pipe(plainText(64 * 1024)),
    )
    .refine((env) => Object.keys(env).length <= MAX_ENV_VARS, `at most ${MAX_ENV_VARS} variables`)
    .optional(),
  timeout: duration.optional(),
  retry: z.number().int().min(0).max(10).optional(),
});

/** A matrix value: a scalar, used as text (in names, `${{ matrix.* }}` and MATRIX_* variables). */
const matrixValue = z.union([z.string(), z.number(), z.boolean()]).transform(String).pipe(plainText(100));
const matrixEntry = z
  .record(z.string().regex(REF_NAME, 'a matrix key'), matrixValue)
  .refine((e) => Object.keys(e).length >= 1, 'an include/exclude entry needs at least one key');
/** `include`, `exclude`, `fail-fast` and `max-parallel`; every other key is an axis (a list of values). */
const matrixSchema = z
  .object({
    include: z.array(matrixEntry).max(MAX_LIST).optional(),
    exclude: z.array(matrixEntry).max(MAX_LIST).optional(),
    'fail-fast': z.boolean().optional(),
    'max-parallel': z.number().int().min(1).max(256).optional(),
  })
  .catchall(z.array(matrixValue).min(1, 'a matrix axis needs at least one value').max(256));

const jobSchema = z.strictObject({
  matrix: matrixSchema.optional(),
  cache: cacheSchema.optional(),
  outputs: z
    .record(z.string().regex(REF_NAME, 'an output name (letters, digits, _ and -)'), plainText(1024))
    .refine((o) => Object.keys(o).length <= MAX_LIST, `at most ${MAX_LIST} outputs`)
    .optional(),
  needs: z.array(z.string().regex(JOB_NAME, 'a job name')).max(MAX_JOBS).optional(),
  steps: z.array(stepSchema).min(1, 'a job needs at least one step').max(MAX_STEPS, `at most ${MAX_STEPS} steps per job`),
  artifacts: z.array(plainText(1024).min(1)).max(MAX_LIST, `at most ${MAX_LIST} artifacts`).optional(),
  secrets: z.array(z.string().regex(ENV_NAME)).max(MAX_LIST, `at most ${MAX_LIST} secrets`).optional(),
  network: z.enum(['none', 'isolated']).optional(),
  'id-token': idTokenSchema.optional(),
  concurrency: concurrencySchema.optional(),
});

/** Environment names (deploy targets, per-environment secrets). */
export const ENVIRONMENT_NAME = /^[A-Za-z0-9_-]{1,64}$/;

const environmentSchema = z.strictObject({
  approval: z.boolean().optional(),
  deploy: z.array(stepSchema).min(1, 'an environment needs at least one deploy step').max(MAX_STEPS, `at most ${MAX_STEPS} steps`),
  rollback: z.array(stepSchema).max(MAX_STEPS, `at most ${MAX_STEPS} steps`).optional(),
  secrets: z.array(z.string().regex(ENV_NAME)).max(MAX_LIST, `at most ${MAX_LIST} secrets`).optional(),
  network: z.enum(['none', 'isolated']).optional(),
  'id-token': idTokenSchema.optional(),
  requires: requiresSchema.optional(),
});

const patterns = z.array(plainText(255).min(1)).max(100);
const fileSchema = z.strictObject({
  on: onSchema(z.strictObject({ branches: patterns.optional(), tags: patterns.optional() }).nullish()).optional(),
  jobs: z
    .record(z.string().regex(JOB_NAME, 'job names use letters, digits, _ and -').refine(notReserved, `this job name ${reservedMessage}`), jobSchema)
    .refine((jobs) => Object.keys(jobs).length >= 1, 'at least one job is needed')
    .refine((jobs) => Object.keys(jobs).length <= MAX_JOBS, `at most ${MAX_JOBS} jobs`),
  environments: z
    .record(
      z.string().regex(ENVIRONMENT_NAME, 'environment names use letters, digits, _ and -').refine(notReserved, `this environment name ${reservedMessage}`),
      environmentSchema,
    )
    .optional(),
  concurrency: concurrencySchema.optional(),
});

export interface StepSpec {
  /** What `${{ steps.<id>.outputs.* }}` names it by; only present when the file gives one. */
  id?: string;
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
  /** `cache:` (issue 17; only when the job has one): restored before its first step, saved after its success. */
  cache?: CacheSpec;
  secrets: string[];
  network: 'none' | 'isolated';
  /** Declared outputs, `${{ steps.<id>.outputs.<k> }}` templates resolved when the job has run (only when declared). */
  outputs?: Record<string, string>;
  /** An instance of a matrix job (only then): the job it came from and its combination. */
  matrix?: MatrixInstance;
  /**
   * `matrix: ${{ fromJSON(needs.<job>.outputs.<key>) }}` (issue 17 item 1; only then): the matrix is
   * that output, read as JSON once the job it names has run; the workflow expands the job then.
   */
  dynamicMatrix?: DynamicMatrix;
  /** `id-token:` (issue 17; only when the job asks): a JWT in DOTGIT_ID_TOKEN, for these audiences. */
  idToken?: IdTokenSpec;
  /** Job-level `concurrency:` (ADR 0037; only when given): the job waits its turn in the group. */
  concurrency?: ConcurrencySpec;
}
/** What a matrix job instance knows of its matrix. */
export interface MatrixInstance {
  /** The job's name in the file (`test` of `test (18, pg)`): `needs:` and `${{ needs.<job>.* }}` name it. */
  job: string;
  values: MatrixCombination;
  /** One instance failing cancels the others (default true). */
  failFast: boolean;
  /** At most this many of the job's instances run at once (default: all). */
  maxParallel?: number;
}
/** An output of a job this one needs (its name in the file), read as JSON: `${{ fromJSON(needs.<job>.outputs.<output>) }}`. */
export interface MatrixSource {
  job: string;
  output: string;
}
/**
 * Where a dynamic matrix comes from. The whole matrix: `job` and `output` only. Axis by axis (ADR
 * 0044): `written` is the matrix as written (key order kept, the product's order), and `from` names
 * the source of each key whose value is a `fromJSON` (an axis, `include` or `exclude`); `job` and
 * `output` are then the first of those.
 */
export interface DynamicMatrix extends MatrixSource {
  written?: Record<string, unknown>;
  from?: Record<string, MatrixSource>;
}
/** A deploy target: its steps, the steps that undo a failed deploy, and whether a person must approve first. */
export interface EnvironmentSpec {
  name: string;
  approval: boolean;
  deploy: StepSpec[];
  rollback: StepSpec[];
  secrets: string[];
  network: 'none' | 'isolated';
  /** `id-token:` (only when asked): the deploy's steps get a JWT whose `sub` names the environment. */
  idToken?: IdTokenSpec;
  /** `requires: [pipeline]` (only when given): a deploy needs a successful run of its commit. */
  requires?: 'pipeline'[];
}
export interface PipelineSpec {
  /** `schedule` and `manual` only when the file has them (core/pipeline-triggers.ts). */
  on: { push: { branches?: string[]; tags?: string[] } } & TriggerSpec;
  jobs: JobSpec[];
  environments?: EnvironmentSpec[];
  /** `concurrency:` (issue 17 item 4; only when the file has it): the run waits its turn in the group. */
  concurrency?: ConcurrencySpec;
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

/** The node at `path` (or the deepest one that exists); with `key`, the last step's key rather than its value. */
function nodeAt(root: Node | null, path: PropertyKey[], key = false): Node | null {
  let node: Node | null = root;
  for (const [i, segment] of path.entries()) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === segment);
      if (!pair) return node;
      node = key && i === path.length - 1 ? (pair.key as Node) : ((pair.value as Node | null) ?? (pair.key as Node));
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment] as Node | undefined;
      if (!item) return node;
      node = item;
    } else return node;
  }
  return node;
}

/** Where in the file: `offset` into the text, as line and column. */
function failAtOffset(lc: LineCounter, offset: number, message: string): never {
  const { line, col } = lc.linePos(offset);
  throw new PipelineSpecError(`${PIPELINE_PATH}:${line}:${col}: ${message}`, line, col);
}

/**
 * Parses the file into its concrete syntax tree and checks it before any node is built: one
 * document, nesting at most YAML_LIMITS.depth. The CST parser keeps its own stack and this walk an
 * explicit one, so even 100 000 nested brackets cost no call stack (the composer would recurse).
 */
function syntaxTree(text: string, lc: LineCounter): CST.Token[] {
  const tokens = [...new Parser(lc.addNewLine).parse(text)];
  let documents = 0;
  for (const token of tokens) {
    if (token.type !== 'document') continue;
    if (++documents > 1) failAtOffset(lc, token.offset, 'only one YAML document is allowed in the pipeline file (this "---" starts a second)');
    const stack: [CST.Token, number][] = token.value ? [[token.value, 1]] : [];
    for (let next = stack.pop(); next; next = stack.pop()) {
      const [node, depth] = next;
      if (node.type !== 'block-map' && node.type !== 'block-seq' && node.type !== 'flow-collection') continue;
      if (depth > YAML_LIMITS.depth) failAtOffset(lc, node.offset, `the file nests too deeply (at most ${YAML_LIMITS.depth} levels)`);
      for (const item of node.items as CST.CollectionItem[]) {
        if (item.key) stack.push([item.key, depth + 1]);
        if (item.value) stack.push([item.value, depth + 1]);
      }
    }
  }
  return tokens;
}

/**
 * Checks anchors and aliases before the document becomes plain values: every alias names an
 * anchor defined before it (and not around it), at most YAML_LIMITS.anchors/aliases of each, and
 * the file with aliases expanded stays under YAML_LIMITS.expandedBytes. Also refuses `__proto__`
 * keys anywhere, since they would set an object's prototype instead of adding a key.
 */
function checkNodes(doc: Document, text: string, lc: LineCounter): void {
  const at = (node: Node, path: PropertyKey[], message: string): never =>
    failAtOffset(lc, node.range?.[0] ?? 0, path.length ? `${path.join('.')}: ${message}` : message);
  const length = (node: Node) => (node.range ? node.range[1] - node.range[0] : 0);
  /** Expanded size of each anchor's latest finished node, as YAML resolves an alias to the last anchor before it. */
  const expanded = new Map<string, number>();
  const open = new Set<string>();
  let anchors = 0;
  let aliases = 0;
  let growth = 0;
  // Recursion is safe: checkSyntaxTree bounded the depth. Answers how much aliases grow `node`.
  const walk = (node: unknown, path: PropertyKey[]): number => {
    if (isAlias(node)) {
      if (++aliases > YAML_LIMITS.aliases) at(node, path, `at most ${YAML_LIMITS.aliases} aliases are allowed`);
      const size = expanded.get(node.source);
      if (size === undefined) {
        return at(node, path, open.has(node.source) ? `alias *${node.source} is inside the node it names (&${node.source} contains it)` : `alias *${node.source} has no anchor &${node.source} before it`);
      }
      const grows = size - length(node);
      growth += grows;
      if (text.length + growth > YAML_LIMITS.expandedBytes) at(node, path, `aliases expand the file past ${YAML_LIMITS.expandedBytes / 1024} KiB (at most that much once every alias is replaced)`);
      return grows;
    }
    if (!isNode(node)) return 0;
    if (node.anchor) {
      if (++anchors > YAML_LIMITS.anchors) at(node, path, `at most ${YAML_LIMITS.anchors} anchors are allowed`);
      expanded.delete(node.anchor);
      open.add(node.anchor);
    }
    let grows = 0;
    if (isCollection(node)) {
      node.items.forEach((item, i) => {
        if (isPair(item)) {
          const key = isScalar(item.key) ? item.key.value : undefined;
          if (key === '__proto__') at(item.key as Node, [...path, key], '"__proto__" is reserved and cannot be a key');
          grows += walk(item.key, [...path, typeof key === 'string' || typeof key === 'number' ? key : '?']);
          grows += walk(item.value, [...path, typeof key === 'string' || typeof key === 'number' ? key : '?']);
        } else grows += walk(item, [...path, i]);
      });
    }
    if (node.anchor) {
      open.delete(node.anchor);
      expanded.set(node.anchor, length(node) + grows);
    }
    return grows;
  };
  walk(doc.contents, []);
}

/** Parses and validates a pipeline file. Throws PipelineSpecError naming line, column and problem, whatever is wrong. */
export function parsePipeline(text: string): PipelineSpec {
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_PIPELINE_FILE_BYTES) throw new PipelineSpecError(`${PIPELINE_PATH}:1:1: the file is ${bytes} bytes; at most ${MAX_PIPELINE_FILE_BYTES} are allowed`, 1, 1);
  const lineCounter = new LineCounter();
  let doc: Document;
  let raw: unknown;
  try {
    const tokens = syntaxTree(text, lineCounter);
    // What parseDocument does, over the tokens already checked (parsing twice would double the cost).
    const [first] = new Composer({ uniqueKeys: true }).compose(tokens, true, text.length);
    doc = first;
    // A warning (an unknown tag such as !!js/function) would silently keep the text as a string: refused too.
    const [problem] = [...doc.errors, ...doc.warnings];
    if (problem) failAtOffset(lineCounter, problem.pos[0], problem.message.split('\n')[0]);
    if (doc.contents === null) failAtOffset(lineCounter, 0, 'the file is empty; it needs at least a jobs: map');
    checkNodes(doc, text, lineCounter);
    // The checks above already bound aliases; YAML's own alias budget is a second fence.
    raw = doc.toJS({ maxAliasCount: YAML_LIMITS.aliases * 10 });
  } catch (err) {
    if (err instanceof PipelineSpecError) throw err;
    // Whatever else a parser can throw (ReferenceError, RangeError) is still a problem of this file.
    throw new PipelineSpecError(`${PIPELINE_PATH}:1:1: the file could not be read as YAML: ${err instanceof Error ? err.message : String(err)}`, 1, 1);
  }
  return buildSpec(doc, raw, lineCounter);
}

function buildSpec(doc: Document, raw: unknown, lineCounter: LineCounter): PipelineSpec {
  const dynamic = takeDynamicMatrices(raw, (path, msg) => failAt(doc.contents as Node | null, lineCounter, path, msg));
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    // An unknown key (often a typo) explains a missing required one, so it is reported first.
    const issue = parsed.error.issues.find((i) => i.code === 'unrecognized_keys') ?? parsed.error.issues[0];
    // A bad record key (job or environment name) is reported at the key, with the rule it broke one level down.
    const badKey = issue.code === 'invalid_key';
    const node = nodeAt(doc.contents as Node | null, issue.path, badKey);
    const pos = node?.range ? lineCounter.linePos(node.range[0]) : { line: 1, col: 1 };
    const where = issue.path.length ? issue.path.join('.') : '(file)';
    const inner = badKey ? (issue as { issues?: { message: string }[] }).issues?.[0]?.message : undefined;
    const message = inner ? `${issue.message}: ${inner}` : issue.message;
    throw new PipelineSpecError(`${PIPELINE_PATH}:${pos.line}:${pos.col}: ${where}: ${message}`, pos.line, pos.col);
  }
  type RawStep = z.infer<typeof stepSchema>;
  const toSteps = (steps: RawStep[]): StepSpec[] =>
    steps.map((s, i) => ({ ...(s.id ? { id: s.id } : {}), name: s.name ?? `step-${i + 1}`, run: s.run, env: s.env ?? {}, timeoutMs: s.timeout, retry: s.retry ?? 0 }));
  const declared: JobSpec[] = Object.entries(parsed.data.jobs).map(([name, job]) => ({
    name,
    needs: job.needs ?? [],
    steps: toSteps(job.steps),
    artifacts: job.artifacts ?? [],
    ...(job.cache ? { cache: cacheOf(job.cache) } : {}),
    secrets: job.secrets ?? [],
    network: job.network ?? 'none',
    ...(job.outputs ? { outputs: job.outputs } : {}),
    ...(job['id-token'] ? { idToken: idTokenOf(job['id-token']) } : {}),
    ...(dynamic.has(name) ? { dynamicMatrix: dynamic.get(name) } : {}),
  }));
  checkJobs(declared, doc.contents as Node | null, lineCounter);
  for (const [name, job] of Object.entries(parsed.data.jobs)) {
    const problem = job.cache ? cacheProblem(job.cache) : undefined;
    if (problem) failAt(doc.contents as Node | null, lineCounter, ['jobs', name, 'cache', ...problem[0]], problem[1]);
  }
  // Job-level groups (ADR 0037): the same expressions as the pipeline's, checked with the line.
  const inputNames = new Set(Object.keys((parsed.data.on?.manual as { inputs?: Record<string, unknown> } | null | undefined)?.inputs ?? {}));
  for (const job of declared) {
    const raw = parsed.data.jobs[job.name].concurrency;
    if (raw === undefined) continue;
    // A matrix job's group may name its keys (ADR 0044): each instance queues in its own.
    const written = parsed.data.jobs[job.name].matrix;
    const keys = written ? matrixKeys(written) : job.dynamicMatrix ? (job.dynamicMatrix.written && !Object.hasOwn(job.dynamicMatrix.from ?? {}, 'include') ? matrixKeys(job.dynamicMatrix.written as RawMatrix) : 'any') : undefined;
    const c = concurrencyOf(raw, inputNames, keys);
    if ('problem' in c) failAt(doc.contents as Node | null, lineCounter, typeof raw === 'string' ? ['jobs', job.name, 'concurrency'] : ['jobs', job.name, 'concurrency', 'group'], c.problem);
    job.concurrency = c;
  }
  const matrices = new Map(Object.entries(parsed.data.jobs).flatMap(([name, job]) => (job.matrix ? [[name, job.matrix] as const] : [])));
  checkReferences(declared, matrices, doc.contents as Node | null, lineCounter);
  const jobs = expandJobs(declared, matrices, doc.contents as Node | null, lineCounter);
  const environments: EnvironmentSpec[] = Object.entries(parsed.data.environments ?? {}).map(([name, e]) => ({
    name,
    approval: e.approval ?? false,
    deploy: toSteps(e.deploy),
    rollback: toSteps(e.rollback ?? []),
    secrets: e.secrets ?? [],
    network: e.network ?? 'none',
    ...(e['id-token'] ? { idToken: idTokenOf(e['id-token']) } : {}),
    ...(e.requires?.length ? { requires: e.requires } : {}),
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
  // Issue 17: schedules, manual inputs and `${{ inputs.* }}` references, checked with their lines.
  const triggers = checkTriggers(parsed.data.on, declared, (path, msg) => failAt(doc.contents as Node | null, lineCounter, path, msg));
  const push = triggers.pushDisabled ? { branches: [] } : { branches: parsed.data.on?.push?.branches, tags: parsed.data.on?.push?.tags };
  const spec: PipelineSpec = { on: { push, ...triggers.on }, jobs };
  // Only present when the file has environments, so pipeline activity results stay as they were.
  if (environments.length > 0) spec.environments = environments;
  if (parsed.data.concurrency !== undefined) {
    const c = concurrencyOf(parsed.data.concurrency, new Set(Object.keys(triggers.on.manual?.inputs ?? {})));
    const at = typeof parsed.data.concurrency === 'string' ? ['concurrency'] : ['concurrency', 'group'];
    if ('problem' in c) failAt(doc.contents as Node | null, lineCounter, at, c.problem);
    spec.concurrency = c;
  }
  return spec;
}

/** `id-token: true` or `{audience}` as the spec keeps it (audiences as a list; none: the default). */
function idTokenOf(raw: z.infer<typeof idTokenSchema>): IdTokenSpec {
  if (raw === true || raw === false) return {};
  return { audience: Array.isArray(raw.audience) ? raw.audience : [raw.audience] };
}

function failAt(root: Node | null, lc: LineCounter, path: PropertyKey[], msg: string): never {
  const node = nodeAt(root, path);
  const pos = node?.range ? lc.linePos(node.range[0]) : { line: 1, col: 1 };
  throw new PipelineSpecError(`${PIPELINE_PATH}:${pos.line}:${pos.col}: ${path.join('.')}: ${msg}`, pos.line, pos.col);
}

type RawMatrix = z.infer<typeof matrixSchema>;

/** A matrix's keys: its axes and the keys its `include` entries add. */
function matrixKeys(m: RawMatrix): Set<string> {
  const axes = Object.keys(m).filter((k) => !['include', 'exclude', 'fail-fast', 'max-parallel'].includes(k));
  return new Set([...axes, ...(m.include ?? []).flatMap((e) => Object.keys(e))]);
}

/**
 * `${{ matrix.<key> }}`, `${{ steps.<id>.outputs.<k> }}` and `${{ needs.<job>.outputs.<k> }}` must
 * name something that exists: a key of the job's matrix, an earlier step's id in the same job (in
 * `outputs:`, any of its steps), an output that a job listed in `needs:` declares.
 */
function checkReferences(jobs: JobSpec[], matrices: Map<string, RawMatrix>, root: Node | null, lc: LineCounter): void {
  const byName = new Map(jobs.map((j) => [j.name, j]));
  for (const job of jobs) {
    const matrix = matrices.get(job.name);
    for (const key of matrix ? Object.keys(matrix) : []) {
      if (!['include', 'exclude', 'fail-fast', 'max-parallel'].includes(key) && !REF_NAME.test(key)) failAt(root, lc, ['jobs', job.name, 'matrix', key], 'a matrix axis name uses letters, digits, _ and -');
    }
    const dyn = job.dynamicMatrix;
    const sources: [PropertyKey[], MatrixSource][] = !dyn ? [] : dyn.from ? Object.entries(dyn.from).map(([k, src]) => [['jobs', job.name, 'matrix', k], src]) : [[['jobs', job.name, 'matrix'], dyn]];
    for (const [path, src] of sources) {
      if (!job.needs.includes(src.job)) failAt(root, lc, path, `\${{ fromJSON(needs.${src.job}.outputs.${src.output}) }}: job "${job.name}" does not list "${src.job}" in needs:`);
      if (!Object.hasOwn(byName.get(src.job)?.outputs ?? {}, src.output)) failAt(root, lc, path, `\${{ fromJSON(needs.${src.job}.outputs.${src.output}) }}: job "${src.job}" declares no output "${src.output}"`);
    }
    // A matrix written axis by axis has its keys known, unless its include comes from JSON.
    const written = dyn?.written && !Object.hasOwn(dyn.from ?? {}, 'include') ? (dyn.written as RawMatrix) : undefined;
    const keys = matrix ? matrixKeys(matrix) : written ? matrixKeys(written) : new Set<string>();
    const ids = new Set<string>();
    const check = (text: string, path: PropertyKey[], stepIds: Set<string>) => {
      for (const expr of expressions(text)) {
        const ref = parseReference(expr);
        // A dynamic matrix's keys are known once its JSON is read: a missing one is then empty, as in GitHub Actions.
        if (ref?.kind === 'matrix' && (!dyn || written) && !keys.has(ref.key)) failAt(root, lc, path, matrix || written ? `\${{ ${expr} }}: the matrix has no key "${ref.key}"` : `\${{ ${expr} }}: job "${job.name}" has no matrix`);
        if (ref?.kind === 'steps' && !stepIds.has(ref.id)) failAt(root, lc, path, `\${{ ${expr} }}: no step with id "${ref.id}" before this one in job "${job.name}"`);
        if (ref?.kind === 'needs') {
          if (!job.needs.includes(ref.job)) failAt(root, lc, path, `\${{ ${expr} }}: job "${job.name}" does not list "${ref.job}" in needs:`);
          if (!Object.hasOwn(byName.get(ref.job)?.outputs ?? {}, ref.key)) failAt(root, lc, path, `\${{ ${expr} }}: job "${ref.job}" declares no output "${ref.key}"`);
        }
      }
    };
    job.steps.forEach((step, i) => {
      if (step.id !== undefined && ids.has(step.id)) failAt(root, lc, ['jobs', job.name, 'steps', i, 'id'], `duplicate step id "${step.id}"`);
      check(step.run, ['jobs', job.name, 'steps', i, 'run'], ids);
      for (const [k, v] of Object.entries(step.env)) check(v, ['jobs', job.name, 'steps', i, 'env', k], ids);
      if (step.id !== undefined) ids.add(step.id);
    });
    for (const [k, v] of Object.entries(job.outputs ?? {})) {
      check(v, ['jobs', job.name, 'outputs', k], ids);
      if (expressions(v).some((e) => parseReference(e)?.kind === 'needs')) failAt(root, lc, ['jobs', job.name, 'outputs', k], 'a job output is made of its own steps\' outputs (steps.<id>.outputs.<name>) and matrix values');
    }
  }
}

/**
 * Each matrix job becomes one job per combination (see core/pipeline-matrix.ts), named
 * `job (v1, v2)`, its `${{ matrix.* }}` substituted and each key also set as MATRIX_<KEY>; a job
 * that needs a matrix job needs all of its instances.
 */
function expandJobs(jobs: JobSpec[], matrices: Map<string, RawMatrix>, root: Node | null, lc: LineCounter): JobSpec[] {
  const instances = new Map<string, string[]>();
  const expanded: JobSpec[] = [];
  for (const job of jobs) {
    const m = matrices.get(job.name);
    if (!m) {
      expanded.push(job);
      continue;
    }
    const { include, exclude, 'fail-fast': failFast, 'max-parallel': maxParallel, ...axes } = m;
    let combos: MatrixCombination[];
    try {
      combos = expandMatrix({ axes: axes as Record<string, string[]>, include: include ?? [], exclude: exclude ?? [] });
    } catch (err) {
      if (err instanceof MatrixError) failAt(root, lc, ['jobs', job.name, 'matrix'], err.message);
      throw err;
    }
    const built = matrixInstances(job, combos, { failFast, maxParallel }, (name) => jobs.some((j) => j.name === name));
    if ('problem' in built) failAt(root, lc, ['jobs', job.name, 'matrix'], built.problem);
    expanded.push(...built.jobs);
    const names = built.jobs.map((j) => j.name);
    instances.set(job.name, names);
  }
  if (expanded.length > MAX_JOB_INSTANCES) failAt(root, lc, ['jobs'], `the jobs expand to ${expanded.length} job instances; at most ${MAX_JOB_INSTANCES} are allowed`);
  return expanded.map((j) => (j.needs.some((n) => instances.has(n)) ? { ...j, needs: j.needs.flatMap((n) => instances.get(n) ?? [n]) } : j));
}

/**
 * One job per combination, named `job (v1, v2)`, its `${{ matrix.* }}` substituted (a key the
 * combination lacks becomes empty) and each key also set as MATRIX_<KEY>. `taken`: a name already
 * used by another job of the file.
 */
function matrixInstances(
  job: JobSpec,
  combos: MatrixCombination[],
  o: { failFast?: boolean; maxParallel?: number },
  taken: (name: string) => boolean,
): { jobs: JobSpec[] } | { problem: string } {
  const out: JobSpec[] = [];
  const names = new Set<string>();
  const { dynamicMatrix: _, ...base } = job;
  for (const values of combos) {
    const name = instanceName(job.name, values);
    if (names.has(name) || taken(name)) return { problem: `two combinations make the same job name "${name}"` };
    names.add(name);
    const fill = (text: string) =>
      substitute(text, (expr) => {
        const ref = parseReference(expr);
        return ref?.kind === 'matrix' ? (Object.hasOwn(values, ref.key) ? values[ref.key] : '') : undefined;
      });
    const matrixEnv = Object.fromEntries(Object.entries(values).map(([k, v]) => [matrixEnvName(k), v]));
    if (job.concurrency && fill(job.concurrency.group).trim() === '') return { problem: `concurrency.group is empty for "${name}"` };
    out.push({
      ...base,
      name,
      steps: job.steps.map((st) => ({ ...st, run: fill(st.run), env: { ...matrixEnv, ...Object.fromEntries(Object.entries(st.env).map(([k, v]) => [k, fill(v)])) } })),
      ...(job.outputs ? { outputs: Object.fromEntries(Object.entries(job.outputs).map(([k, v]) => [k, fill(v)])) } : {}),
      ...(job.cache ? { cache: { ...job.cache, key: fill(job.cache.key), restoreKeys: job.cache.restoreKeys.map(fill) } } : {}),
      ...(job.concurrency ? { concurrency: { ...job.concurrency, group: fill(job.concurrency.group).slice(0, MAX_GROUP_LENGTH) } } : {}),
      matrix: { job: job.name, values, failFast: o.failFast ?? true, ...(o.maxParallel !== undefined ? { maxParallel: o.maxParallel } : {}) },
    });
  }
  return { jobs: out };
}

/** `matrix: ${{ fromJSON(needs.<job>.outputs.<key>) }}`, the one expression a whole matrix may be. */
const DYNAMIC_MATRIX = /^\$\{\{\s*fromJSON\(\s*needs\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)\s*\)\s*\}\}$/;

/**
 * Takes each job's `matrix:` that is a string out of the raw file (the schema knows matrices as
 * maps) and answers what each names; any other string is a problem of the file, with its line.
 */
function takeDynamicMatrices(raw: unknown, fail: (path: PropertyKey[], msg: string) => never): Map<string, DynamicMatrix> {
  const found = new Map<string, DynamicMatrix>();
  const jobs = (raw as { jobs?: unknown } | null)?.jobs;
  if (typeof jobs !== 'object' || jobs === null || Array.isArray(jobs)) return found;
  for (const [name, job] of Object.entries(jobs as Record<string, unknown>)) {
    if (typeof job !== 'object' || job === null) continue;
    const written = (job as { matrix?: unknown }).matrix;
    if (typeof written === 'object' && written !== null && !Array.isArray(written)) {
      const axes = axisSources(name, written as Record<string, unknown>, fail);
      if (axes) {
        found.set(name, axes);
        delete (job as { matrix?: unknown }).matrix;
      }
      continue;
    }
    if (typeof written !== 'string') continue;
    const text = written;
    const m = DYNAMIC_MATRIX.exec(text.trim());
    if (!m) fail(['jobs', name, 'matrix'], 'a matrix is a map of axes, or ${{ fromJSON(needs.<job>.outputs.<name>) }} (the matrix as JSON from a job this one needs)');
    found.set(name, { job: m[1], output: m[2] });
    delete (job as { matrix?: unknown }).matrix;
  }
  return found;
}

/**
 * A written matrix some of whose keys are `${{ fromJSON(needs.<job>.outputs.<name>) }}` (an axis,
 * `include` or `exclude`; ADR 0044), or undefined when none is. The written rest is checked now,
 * with its lines, as any matrix is; the referenced keys once their outputs are known.
 */
function axisSources(job: string, matrix: Record<string, unknown>, fail: (path: PropertyKey[], msg: string) => never): DynamicMatrix | undefined {
  const from: Record<string, MatrixSource> = {};
  for (const [key, value] of Object.entries(matrix)) {
    const m = typeof value === 'string' ? DYNAMIC_MATRIX.exec(value.trim()) : null;
    if (!m) continue;
    if (key === 'fail-fast' || key === 'max-parallel') fail(['jobs', job, 'matrix', key], `${key} is written in the file; fromJSON gives an axis, include or exclude`);
    from[key] = { job: m[1], output: m[2] };
  }
  const keys = Object.keys(from);
  if (keys.length === 0) return undefined;
  const bad = Object.keys(matrix).find((k) => !['include', 'exclude', 'fail-fast', 'max-parallel'].includes(k) && !REF_NAME.test(k));
  if (bad !== undefined) fail(['jobs', job, 'matrix', bad], 'a matrix axis name uses letters, digits, _ and -');
  const rest = matrixSchema.safeParse(Object.fromEntries(Object.entries(matrix).filter(([k]) => !Object.hasOwn(from, k))));
  if (!rest.success) {
    const issue = rest.error.issues[0];
    fail(['jobs', job, 'matrix', ...issue.path], issue.message);
  }
  return { ...from[keys[0]], written: matrix, from };
}

/**
 * The instances of a dynamic matrix job (issue 17 item 1), once the output it names is known:
 * `json` must be a JSON object of the same shape as a written matrix (axes as lists of scalars,
 * `include`, `exclude`, `fail-fast`, `max-parallel`), at most 256 combinations. A problem is
 * answered as text naming the job and the output, for the job's log; the run goes on. A matrix
 * written axis by axis (ADR 0044) takes each referenced key's output from `values` (by key): a JSON
 * array (an axis's values, or `include`/`exclude` entries).
 */
export function expandDynamicMatrix(job: JobSpec, json: string, otherJobs: string[], values?: Record<string, string>): { jobs: JobSpec[] } | { problem: string } {
  const dyn = job.dynamicMatrix;
  const source = (src: MatrixSource) => `needs.${src.job}.outputs.${src.output}`;
  // What a problem of the expanded matrix names: the output it came from whole, or the matrix itself.
  const from = dyn && !dyn.from ? source(dyn) : 'the matrix';
  const shown = (text: string) => JSON.stringify(text.slice(0, 200));
  let value: unknown;
  if (dyn?.written && dyn.from) {
    // Axis by axis (ADR 0044): each referenced key's output (`values`, by key; the first one's is `json` too), in the written order.
    const built: Record<string, unknown> = {};
    for (const [key, written] of Object.entries(dyn.written)) {
      const src = Object.hasOwn(dyn.from, key) ? dyn.from[key] : undefined;
      if (!src) {
        built[key] = written;
        continue;
      }
      const text = values && Object.hasOwn(values, key) ? values[key] : src.job === dyn.job && src.output === dyn.output ? json : '';
      try {
        built[key] = JSON.parse(text);
      } catch (err) {
        return { problem: `matrix.${key}: ${source(src)} is not JSON (${(err as Error).message}): ${shown(text)}` };
      }
      if (!Array.isArray(built[key])) return { problem: `matrix.${key}: ${source(src)} must be a JSON array (such as ${key === 'include' || key === 'exclude' ? '[{"os": "linux"}]' : '["linux", "mac"]'}), got ${shown(text)}` };
    }
    const parsed = matrixSchema.safeParse(built);
    if (!parsed.success) {
      const [key, ...rest] = parsed.error.issues[0].path.map(String);
      const src = key !== undefined && Object.hasOwn(dyn.from, key) ? `: ${source(dyn.from[key])}${rest.length ? `.${rest.join('.')}` : ''}` : rest.length ? `.${rest.join('.')}` : '';
      return { problem: `matrix${key !== undefined ? `.${key}` : ''}${src}: ${parsed.error.issues[0].message}` };
    }
    value = parsed.data;
  } else {
    try {
      value = JSON.parse(json);
    } catch (err) {
      return { problem: `matrix: ${from} is not JSON (${(err as Error).message}): ${shown(json)}` };
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return { problem: `matrix: ${from} must be a JSON object of axes (such as {"node": [18, 20]}), got ${shown(json)}` };
  }
  const parsed = matrixSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { problem: `matrix: ${from}${issue.path.length ? `.${issue.path.join('.')}` : ''}: ${issue.message}` };
  }
  const { include, exclude, 'fail-fast': failFast, 'max-parallel': maxParallel, ...axes } = parsed.data;
  const bad = Object.keys(axes).find((k) => !REF_NAME.test(k));
  if (bad !== undefined) return { problem: `matrix: ${from}: axis "${bad}": a matrix axis name uses letters, digits, _ and -` };
  const problemOf = (message: string) => (dyn?.from ? `matrix: ${message}` : `matrix: ${from}: ${message}`);
  let combos: MatrixCombination[];
  try {
    combos = expandMatrix({ axes: axes as Record<string, string[]>, include: include ?? [], exclude: exclude ?? [] });
  } catch (err) {
    if (err instanceof MatrixError) return { problem: problemOf(err.message) };
    throw err;
  }
  return matrixInstances(job, combos, { failFast, maxParallel }, (name) => otherJobs.includes(name));
}

function checkJobs(jobs: JobSpec[], root: Node | null, lc: LineCounter): void {
  const fail = (path: PropertyKey[], msg: string): never => failAt(root, lc, path, msg);
  const names = new Set(jobs.map((j) => j.name));
  for (const job of jobs) {
    job.needs.forEach((n, i) => {
      if (!names.has(n)) fail(['jobs', job.name, 'needs', i], `unknown job "${n}"`);
      if (job.needs.indexOf(n) !== i) fail(['jobs', job.name, 'needs', i], `"${n}" is listed twice`);
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
