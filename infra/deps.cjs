#!/usr/bin/env node
// The install step of `npm start` and `npm test` (issue 16, ADR 0029): node_modules made from
// package-lock.json with `npm ci` when it is missing or does not match the lockfile, and nothing
// otherwise. Never `npm install`, which may rewrite the lockfile and leave a fresh clone's tree
// dirty; `npm ci` only reads it (and stops if package.json and the lockfile disagree). Plain
// JavaScript: it runs before any dependency is there.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const MODULES = path.join(ROOT, 'node_modules');

const readJson = (file) => {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
};

/**
 * Why node_modules does not match the lockfile, or undefined when it does. npm keeps what it
 * installed in node_modules/.package-lock.json; every package the lockfile names must be there at
 * its version, except optional ones (another platform's binaries are never installed).
 */
function mismatch() {
  const lock = readJson(path.join(ROOT, 'package-lock.json'));
  if (!lock?.packages) return 'package-lock.json is missing or unreadable';
  const installed = readJson(path.join(MODULES, '.package-lock.json'));
  if (!installed?.packages) return 'node_modules is missing';
  for (const [name, want] of Object.entries(lock.packages)) {
    if (name === '' || want.link) continue;
    const have = installed.packages[name];
    if (!have) {
      if (want.optional || want.devOptional || want.peer) continue;
      return `${name.replace(/^node_modules\//, '')} is not installed`;
    }
    if (have.version !== want.version) return `${name.replace(/^node_modules\//, '')} is ${have.version}, the lockfile says ${want.version}`;
  }
  return undefined;
}

function main() {
  const dryRun = process.argv.includes('--dry-run');
  const why = mismatch();
  if (!why) return 0;
  // A linked node_modules (a second checkout sharing the first one's) is not ours to replace.
  if (fs.existsSync(MODULES) && fs.lstatSync(MODULES).isSymbolicLink()) {
    console.warn(`dotgit: ${why}; node_modules is a link to ${fs.realpathSync(MODULES)}, left as it is`);
    return 0;
  }
  console.log(`dotgit: ${why}: npm ci${dryRun ? ' --dry-run' : ''}`);
  const npm = process.env.npm_execpath ? [process.execPath, [process.env.npm_execpath]] : ['npm', []];
  const r = spawnSync(npm[0], [...npm[1], 'ci', '--no-audit', '--no-fund', '--loglevel=error', ...(dryRun ? ['--dry-run'] : [])], { cwd: ROOT, stdio: 'inherit' });
  return r.status ?? 1;
}

module.exports = { mismatch };

if (require.main === module) process.exit(main());
