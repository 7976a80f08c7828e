#!/usr/bin/env node
// The production build (ADR 0029): `node infra/build.cjs` compiles the platform's entry points with
// esbuild into dist/ (one CommonJS file each, packages left to node_modules) and prebuilds the
// Temporal workflow bundle, so the service processes run plain JavaScript and the worker starts
// without bundling. Plain JavaScript itself, so `npm start` can run it before anything is compiled
// and without tsx. It rebuilds only what its sources changed: a stamp (dist/.build-stamp.json)
// holds the hash of every input the last build read; checking it costs a few milliseconds.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(ROOT, 'dist');
const STAMP = path.join(OUT, '.build-stamp.json');
const LOCK = path.join(OUT, '.build.lock');

/** What the runner and its processes start (source paths; each compiles to dist/<same>.js). */
const ENTRIES = ['infra/start.ts', 'gateway/main.ts', 'api/main.ts', 'git-server/main.ts', 'worker/main.ts', 'infra/wal-archive.ts', 'infra/migrate.ts'];
const WORKFLOWS = 'workflows/index.ts';
/** The two workflow bundles: plain, and with the OpenTelemetry workflow interceptors (tracing on, ADR 0018). */
const BUNDLES = { plain: 'workflows.js', traced: 'workflows-traced.js' };
const OTEL_WORKFLOW_INTERCEPTORS = '@temporalio/interceptors-opentelemetry/lib/workflow-interceptors';

const sha = (data) => crypto.createHash('sha256').update(data).digest('hex');
const hashFile = (file) => {
  try {
    return sha(fs.readFileSync(file));
  } catch {
    return 'missing';
  }
};
const hashInputs = (files) => Object.fromEntries(files.map((f) => [f, hashFile(path.join(ROOT, f))]));
/** Changes to the build itself, or to the dependencies bundled into the workflow code, rebuild. */
const toolHash = () => sha([hashFile(__filename), hashFile(path.join(ROOT, 'package-lock.json')), process.version].join(' '));

/** The compiled file of a source entry, e.g. `gateway/main.ts` -> `<root>/dist/gateway/main.js`. */
function compiledPath(entry, outDir = OUT) {
  return path.join(outDir, entry.replace(/\.ts$/, '.js'));
}

function readStamp() {
  try {
    return JSON.parse(fs.readFileSync(STAMP, 'utf8'));
  } catch {
    return undefined;
  }
}

const changed = (recorded) => !recorded || Object.entries(recorded).some(([f, h]) => hashFile(path.join(ROOT, f)) !== h);

/** What is out of date: the services' code, the workflow bundles, both or neither. */
function staleness(stamp = readStamp()) {
  const tool = toolHash();
  const fresh = stamp && stamp.tool === tool;
  const outputsThere = (files) => files.every((f) => fs.existsSync(f));
  return {
    services: !fresh || changed(stamp.services) || !outputsThere(ENTRIES.map((e) => compiledPath(e))),
    workflows: !fresh || changed(stamp.workflows) || !outputsThere(Object.values(BUNDLES).map((b) => path.join(OUT, b))),
  };
}

/**
 * Each source file that uses `__dirname` or `__filename` gets its own, as when run from source:
 * bundled together the files share the output file's, and the code finds its migrations, its
 * hooks and the repository root relative to where its source lives.
 */
const sourcePathsPlugin = {
  name: 'source-paths',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
      const text = await fs.promises.readFile(args.path, 'utf8');
      if (!/\b__(dirname|filename)\b/.test(text)) return { contents: text, loader: 'ts' };
      const rel = path.relative(ROOT, args.path).split(path.sep).join('/');
      const header =
        `var __dirname = require('node:path').join(__dotgitRoot, ${JSON.stringify(path.posix.dirname(rel))}); ` +
        `var __filename = require('node:path').join(__dotgitRoot, ${JSON.stringify(rel)});\n`;
      return { contents: header + text, loader: 'ts' };
    });
  },
};

/** Writes `data` to `file` through a temporary name, so a process starting meanwhile reads a whole file. */
function writeAtomic(file, data) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

async function buildServices() {
  const esbuild = require('esbuild');
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    // Absolute: `packages: 'external'` would take a bare `worker/main.ts` for a package.
    entryPoints: ENTRIES.map((e) => path.join(ROOT, e)),
    outbase: ROOT,
    outdir: OUT,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: `node${process.versions.node.split('.')[0]}`,
    // Dependencies stay in node_modules, loaded as from source (native addons, the SDK's own files).
    packages: 'external',
    // Every output file is dist/<dir>/<name>.js, two levels below the root.
    banner: { js: `var __dotgitRoot = require('node:path').resolve(__dirname, '..', '..');` },
    sourcemap: 'linked',
    keepNames: true,
    metafile: true,
    write: false,
    logLevel: 'warning',
    plugins: [sourcePathsPlugin],
  });
  for (const f of result.outputFiles) writeAtomic(f.path, f.contents);
  return Object.keys(result.metafile.inputs).filter((f) => !f.startsWith('node_modules/'));
}

/** Our files the workflow code is made of (webpack does the bundling; esbuild only lists them). */
async function workflowInputs() {
  const esbuild = require('esbuild');
  const result = await esbuild.build({ absWorkingDir: ROOT, entryPoints: [path.join(ROOT, WORKFLOWS)], bundle: true, platform: 'neutral', packages: 'external', metafile: true, write: false, logLevel: 'silent' });
  return Object.keys(result.metafile.inputs).filter((f) => !f.startsWith('node_modules/'));
}

async function buildWorkflows() {
  const { bundleWorkflowCode } = require('@temporalio/worker');
  const quiet = { log() {}, trace() {}, debug() {}, info() {}, warn: (m) => console.warn(m), error: (m) => console.error(m) };
  const workflowsPath = path.join(ROOT, WORKFLOWS);
  // One after the other: webpack is CPU-bound, and two at once only contend.
  const plain = await bundleWorkflowCode({ workflowsPath, logger: quiet });
  writeAtomic(path.join(OUT, BUNDLES.plain), plain.code);
  const traced = await bundleWorkflowCode({ workflowsPath, logger: quiet, workflowInterceptorModules: [require.resolve(OTEL_WORKFLOW_INTERCEPTORS, { paths: [ROOT] })] });
  writeAtomic(path.join(OUT, BUNDLES.traced), traced.code);
  return workflowInputs();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
};

/** One build at a time per tree (two test runs may start together); a dead holder's lock is taken over. */
async function withLock(fn) {
  fs.mkdirSync(OUT, { recursive: true });
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      fs.writeFileSync(LOCK, String(process.pid), { flag: 'wx' });
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      const holder = Number(fs.readFileSync(LOCK, 'utf8')) || 0;
      if (holder && !alive(holder)) fs.rmSync(LOCK, { force: true });
      else if (Date.now() > deadline) throw new Error(`build lock ${LOCK} held by pid ${holder} for 3 minutes`);
      else await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(LOCK, { force: true });
  }
}

/**
 * Builds what is out of date. Returns what it did: `{ services, workflows }` (true = rebuilt) and
 * the milliseconds taken.
 */
async function ensureBuilt(o = {}) {
  const log = o.log ?? (() => undefined);
  const started = Date.now();
  // The web console (console/build.cjs, ADR 0032) keeps its own stamp: a few milliseconds when unchanged.
  const web = await require('../console/build.cjs').buildConsole({ force: o.force });
  if (web.built) log(`build: console built in ${web.ms} ms (JavaScript ${web.jsGzip} bytes gzipped)`);
  if (!o.force) {
    const s = staleness();
    if (!s.services && !s.workflows) return { services: false, workflows: false, ms: Date.now() - started };
  }
  return withLock(async () => {
    // Another process may have built while we waited for the lock.
    const stamp = readStamp();
    const s = o.force ? { services: true, workflows: true } : staleness(stamp);
    const next = { tool: toolHash(), services: stamp?.services, workflows: stamp?.workflows };
    if (s.services) {
      const t = Date.now();
      // Hashes from before the build: a file edited while it runs is seen as changed next time.
      const before = stamp?.services ? hashInputs(Object.keys(stamp.services)) : {};
      const inputs = await buildServices();
      next.services = { ...hashInputs(inputs), ...Object.fromEntries(inputs.filter((f) => f in before).map((f) => [f, before[f]])) };
      log(`build: ${ENTRIES.length} entry points compiled in ${Date.now() - t} ms`);
    }
    if (s.workflows) {
      const t = Date.now();
      const before = stamp?.workflows ? hashInputs(Object.keys(stamp.workflows)) : {};
      const inputs = await buildWorkflows();
      next.workflows = { ...hashInputs(inputs), ...Object.fromEntries(inputs.filter((f) => f in before).map((f) => [f, before[f]])) };
      log(`build: workflow bundles made in ${Date.now() - t} ms`);
    }
    writeAtomic(STAMP, JSON.stringify(next, null, 1));
    return { ...s, ms: Date.now() - started };
  });
}

module.exports = { ensureBuilt, staleness, compiledPath, ENTRIES, BUNDLES, OUT };

if (require.main === module) {
  const force = process.argv.includes('--force');
  ensureBuilt({ force, log: (m) => console.log(`dotgit: ${m}`) }).then(
    (r) => {
      if (!r.services && !r.workflows && process.argv.includes('--verbose')) console.log(`dotgit: build up to date (checked in ${r.ms} ms)`);
    },
    (err) => {
      console.error(`dotgit: build failed: ${err.stack ?? err}`);
      process.exit(1);
    },
  );
}
