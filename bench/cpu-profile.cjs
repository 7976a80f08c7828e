// CPU profile of the gateway and api processes of a bench run, written when each exits:
//   NODE_OPTIONS="--require ./bench/cpu-profile.cjs" BENCH_ONLY=gateway npm run bench
// (Node refuses --cpu-prof in NODE_OPTIONS; this preload does the same through node:inspector.)
// Profiles go to $DOTGIT_CPU_PROFILE_DIR (default /tmp) as <service>-<pid>.cpuprofile, for Chrome
// DevTools or any .cpuprofile viewer. Other processes that inherit NODE_OPTIONS are left alone.
'use strict';
// Sources (tsx) or the compiled build (dist/<service>/main.js, ADR 0029).
const match = /\/(gateway|api)\/main\.[tj]s/.exec(process.argv.join(' '));
if (match) {
  const inspector = require('node:inspector');
  const fs = require('node:fs');
  const path = require('node:path');
  const session = new inspector.Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 200 });
  session.post('Profiler.start');
  process.on('exit', () => {
    // The in-thread session answers synchronously, so this completes inside the exit handler.
    session.post('Profiler.stop', (err, res) => {
      if (err) return;
      const dir = process.env.DOTGIT_CPU_PROFILE_DIR || '/tmp';
      fs.writeFileSync(path.join(dir, `${match[1]}-${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  });
}
