#!/usr/bin/env node
// The web console's build (ADR 0032): `node console/build.cjs` bundles console/src with esbuild
// (Preact, JSX, minified, hashed names) into console/dist/ and writes index.html naming those files.
// Plain JavaScript, like infra/build.cjs, so `npm start` runs it before anything is compiled. It
// rebuilds only when an input changed: console/dist/.stamp holds the hash of every source file, this
// file and package-lock.json (checking costs a few milliseconds). `--force` rebuilds anyway.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const SRC = path.join(__dirname, 'src');
const OUT = path.join(__dirname, 'dist');
const STAMP = path.join(OUT, '.stamp');

function inputsHash() {
  const h = crypto.createHash('sha256');
  const files = fs.readdirSync(SRC, { recursive: true }).map(String).filter((f) => fs.statSync(path.join(SRC, f)).isFile()).sort();
  for (const f of files) h.update(f).update('\0').update(fs.readFileSync(path.join(SRC, f))).update('\0');
  h.update(fs.readFileSync(__filename)).update(fs.readFileSync(path.join(ROOT, 'package-lock.json')));
  return h.digest('hex');
}

const fresh = (hash) => {
  try {
    return fs.readFileSync(STAMP, 'utf8') === hash && fs.existsSync(path.join(OUT, 'index.html'));
  } catch {
    return false;
  }
};

/** Builds when stale; answers what it did and the size of the JavaScript (raw and gzipped, bytes). */
async function buildConsole(o = {}) {
  const hash = inputsHash();
  if (!o.force && fresh(hash)) return { built: false };
  const started = Date.now();
  const esbuild = require('esbuild');
  const tmp = `${OUT}.${process.pid}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: { app: path.join(SRC, 'main.tsx') },
    outdir: path.join(tmp, 'assets'),
    entryNames: '[name]-[hash]',
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['chrome110', 'firefox110', 'safari16'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    metafile: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  const outputs = Object.keys(result.metafile.outputs).map((f) => '/assets/' + path.basename(f));
  const js = outputs.find((f) => f.endsWith('.js'));
  const css = outputs.find((f) => f.endsWith('.css'));
  // No inline script or style (the Content-Security-Policy forbids both): only the two files.
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dotgit</title>
<link rel="icon" href="data:,">
${css ? `<link rel="stylesheet" href="${css}">\n` : ''}<script type="module" src="${js}"></script>
</head>
<body><div id="app"></div></body>
</html>
`;
  fs.writeFileSync(path.join(tmp, 'index.html'), html);
  fs.writeFileSync(path.join(tmp, '.stamp'), hash);
  // Swapped in whole: a gateway serving meanwhile sees the old build or the new one, never half.
  const old = `${OUT}.${process.pid}.old`;
  try {
    if (fs.existsSync(OUT)) fs.renameSync(OUT, old);
    fs.renameSync(tmp, OUT);
  } catch (err) {
    // Another process (a test run beside npm start) swapped its identical build in meanwhile: keep that one.
    if (!fs.existsSync(path.join(OUT, 'index.html'))) throw err;
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  fs.rmSync(old, { recursive: true, force: true });
  const jsBytes = fs.readFileSync(path.join(OUT, 'assets', path.basename(js)));
  return { built: true, ms: Date.now() - started, js: jsBytes.length, jsGzip: require('node:zlib').gzipSync(jsBytes, { level: 9 }).length };
}

module.exports = { buildConsole };

if (require.main === module) {
  buildConsole({ force: process.argv.includes('--force') }).then(
    (r) => console.log(r.built ? `dotgit: console built in ${r.ms} ms (JavaScript ${r.js} bytes, ${r.jsGzip} gzipped)` : 'dotgit: console up to date'),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
