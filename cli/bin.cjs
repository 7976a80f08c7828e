#!/usr/bin/env node
// The `dotgit` command as installed by npm (package.json `bin`): `npx dotgit` in the repository,
// `dotgit` on PATH after `npm link`. tsx is registered from here, not from the caller's directory,
// so the command works wherever it is run from.
require('tsx/cjs/api').register();
require('./dotgit.ts').run();
