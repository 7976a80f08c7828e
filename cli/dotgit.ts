import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { DotgitApiError, DotgitClient, TERMINAL_DEPLOY_STATUSES, TERMINAL_STATUSES, type Deploy, type Run, type RunEvent } from './client';
import { configPath, readConfig, resolveTarget, writeConfig } from './config';

/**
 * The `dotgit` command (CONTRACT: `npx dotgit …`, `--help` everywhere, `--json`, exit codes).
 * Commands are `noun verb` like gh's; each is a thin layer over the SDK in ./client.ts. commander
 * gives every command and group its `--help`; the exit codes are decided in one place (`exitCode`).
 */

/** Exit codes (README "The dotgit command"). */
export const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3, notAllowed: 4 } as const;

/** Bad arguments the parser cannot see (e.g. OWNER/NAME malformed): exit 2 like the parser's own. */
class UsageError extends Error {}

/** What was waited for (a run, a deploy, the audit chain) ended badly: exit 1, after its answer was printed. */
class Failed extends Error {}

function exitCode(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  if (err instanceof UsageError) return EXIT.usage;
  if (err instanceof DotgitApiError) {
    if (err.status === 404) return EXIT.notFound;
    if (err.status === 401 || err.status === 403) return EXIT.notAllowed;
  }
  return EXIT.failed;
}

const EXIT_HELP = `
Exit codes: 0 success; 1 what was waited for failed (a run or deploy that did not succeed, a broken
audit chain) or the request failed; 2 usage error; 3 not found (404); 4 not allowed (401/403).
Environment: DOTGIT_URL and DOTGIT_TOKEN override the config file written by \`dotgit login\`
($XDG_CONFIG_HOME/dotgit/config.json, default ~/.config/dotgit/config.json); without either, the
URL is http://127.0.0.1:8080 and the token .data/admin.token of a local \`npm start\`.`;

function ownerRepo(arg: string): [string, string] {
  const [owner, name, extra] = arg.split('/');
  if (!owner || !name || extra !== undefined) throw new UsageError(`expected OWNER/NAME, got '${arg}'`);
  return [owner, name];
}

/** `--after`/`--limit` of a paged list, checked before anything is asked. */
function pageOptions(o: { after?: string; limit?: string }): { after?: number; limit?: number } {
  for (const [k, v] of [['after', o.after], ['limit', o.limit]] as const) {
    if (v !== undefined && !/^\d+$/.test(v)) throw new UsageError(`--${k} must be a whole number, got '${v}'`);
  }
  return { after: o.after === undefined ? undefined : Number(o.after), limit: o.limit === undefined ? undefined : Number(o.limit) };
}

interface Globals {
  json?: boolean;
}

/** The options of a command together with the program's (`--json` works before or after the command). */
function globals(cmd: Command): Globals {
  return cmd.optsWithGlobals<Globals>();
}

function client(): DotgitClient {
  const { url, token } = resolveTarget();
  return new DotgitClient(url, token);
}

const out = (text: string): void => void process.stdout.write(text.endsWith('\n') ? text : text + '\n');
const err = (text: string): void => void process.stderr.write(text.endsWith('\n') ? text : text + '\n');

/** One answer: JSON with `--json`, else `key: value` lines. */
function show(cmd: Command, value: object, human?: string): void {
  if (globals(cmd).json) return out(JSON.stringify(value, null, 2));
  if (human !== undefined) return out(human);
  out(
    Object.entries(value)
      .map(([k, v]) => `${k}: ${v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
      .join('\n'),
  );
}

/** A list: JSON array with `--json`, else one tab-separated line per item with the given columns. */
function list<T extends object>(cmd: Command, items: T[], columns: (keyof T & string)[]): void {
  if (globals(cmd).json) return out(JSON.stringify(items, null, 2));
  if (items.length === 0) return err('(none)');
  out(items.map((i) => columns.map((c) => String((i as Record<string, unknown>)[c] ?? '-')).join('\t')).join('\n'));
}

function done(cmd: Command, json: object, human: string): void {
  if (globals(cmd).json) out(JSON.stringify(json, null, 2));
  else out(human);
}

/**
 * Follows a run's or deploy's live events (SSE) to its end: log lines to stdout (when `logs`),
 * a step progress line to stderr (rewritten in place on a terminal). Answers the final status.
 */
async function follow(
  api: DotgitClient,
  kind: 'run' | 'deploy',
  id: string,
  o: { logs: boolean; json?: boolean; job?: string; step?: string; progress: boolean },
): Promise<void> {
  const steps = new Map<string, string>();
  const tty = process.stderr.isTTY;
  let progressShown = false;
  const progress = (current: string): void => {
    if (!o.progress) return;
    const finished = [...steps.values()].filter((s) => !['queued', 'running', 'pending'].includes(s)).length;
    const line = `[${finished}/${steps.size} steps] ${current}`;
    if (tty) {
      process.stderr.write(`\r\x1b[K${line}`);
      progressShown = true;
    } else err(line);
  };
  const wanted = (e: { job: string; step: string }) => (!o.job || e.job === o.job) && (!o.step || e.step === o.step);
  // Steps already known (a run followed late) count in the progress line from the start. The events
  // replay from the run's first one: for a run that has already ended the replay is history, and
  // its final states stay (the replay would count its steps down and up again).
  const current = kind === 'run' ? await api.getRun(id) : await api.getDeploy(id);
  const ended = (TERMINAL_DEPLOY_STATUSES as readonly string[]).concat(TERMINAL_STATUSES).includes(current.status);
  for (const s of current.steps) steps.set(`${s.job}/${s.name}`, s.status);
  for await (const e of api.events(kind, id) as AsyncGenerator<RunEvent>) {
    if (o.json && o.logs && (e.event !== 'log' || wanted(e.data))) out(JSON.stringify(e));
    if (e.event === 'log' && o.logs && !o.json && wanted(e.data)) {
      if (progressShown) process.stderr.write('\r\x1b[K');
      out(o.job && o.step ? e.data.line : `${e.data.job}/${e.data.step} | ${e.data.line}`);
    } else if (e.event === 'step') {
      if (!ended) steps.set(`${e.data.job}/${e.data.step}`, e.data.status);
      progress(`${e.data.job}/${e.data.step} ${e.data.status}${e.data.exitCode != null && e.data.status !== 'running' ? ` (exit ${e.data.exitCode})` : ''}`);
    } else if (e.event === 'status') {
      progress(`${kind} ${e.data.status}${e.data.message ? `: ${e.data.message}` : ''}`);
    } else if (e.event === 'pending' && e.data.reason) {
      progress(`${e.data.job} (pending: ${e.data.message})`);
    }
  }
  if (progressShown) process.stderr.write('\n');
}

/** Exit 1 when the run or deploy did not succeed (what `--wait`, `watch` and `--follow` promise scripts). */
function failIfUnsuccessful(kind: string, x: { id: string; status: string; message?: string | null }): void {
  if (x.status !== 'success') throw new Failed(`${kind} ${x.id} ended ${x.status}${x.message ? `: ${x.message}` : ''}`);
}

/** Why it waits (issue 17 item 8), unless the message already says it. */
function pendingNote(p: Run['pending'] | undefined, message?: string | null): string {
  return p && p.message !== message ? `  (pending: ${p.message})` : '';
}

function runLine(r: Run): string {
  const lines = [`${r.id}  ${r.status}  ${r.ref} ${r.commit.slice(0, 12)}${r.message ? `  ${r.message}` : ''}${pendingNote(r.pending, r.message)}`];
  for (const s of r.steps) lines.push(`  ${s.job}/${s.name}  ${s.status}${s.exitCode != null ? ` (exit ${s.exitCode})` : ''}${pendingNote(s.pending)}`);
  return lines.join('\n');
}

function deployLine(d: Deploy): string {
  const lines = [`${d.id}  ${d.status}  ${d.environment}  ${d.ref} ${(d.commit ?? '').slice(0, 12)}${d.message ? `  ${d.message}` : ''}${pendingNote(d.pending, d.message)}`];
  for (const s of d.steps) lines.push(`  ${s.job}/${s.name}  ${s.status}${s.exitCode != null ? ` (exit ${s.exitCode})` : ''}`);
  return lines.join('\n');
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The command tree; `output` replaces stdout/stderr for commander's own text (help, usage errors). */
export function program(output?: { writeOut: (s: string) => void; writeErr: (s: string) => void }): Command {
  const root = new Command('dotgit');
  if (output) root.configureOutput(output);
  root
    .description('The dotgit platform from the command line: repositories, runs, logs, deploys, tokens.')
    .option('--json', 'print answers as JSON (lists as arrays; followed events as one JSON object a line)')
    .configureHelp({ showGlobalOptions: true })
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .addHelpText('after', EXIT_HELP);
  // Groups without a verb show their help, as a usage error (exit 2).
  const group = (name: string, description: string) => root.command(name).description(description);

  root
    .command('login')
    .description('store the platform URL and a token in the config file (mode 0600); the token is read from stdin without --token')
    .option('--url <url>', 'the gateway, e.g. http://127.0.0.1:8080 (default: the current one)')
    .option('--token <token>', 'an API token (default: read from stdin)')
    .option('--no-verify', 'store without asking the platform whether it accepts the token')
    .action(async (o: { url?: string; token?: string; verify: boolean }, cmd: Command) => {
      const file = configPath();
      const current = readConfig(file);
      const url = o.url ?? current.url ?? resolveTarget().url;
      const token = (o.token ?? (await readStdin())).trim();
      if (!token) throw new UsageError('no token given (use --token or pipe it on stdin)');
      if (!/^https?:\/\//.test(url)) throw new UsageError(`--url must be an http(s) URL, got '${url}'`);
      if (o.verify && !(await new DotgitClient(url, token).tokenAccepted())) {
        throw new DotgitApiError(401, 'unauthenticated', `${url} does not accept this token; nothing stored`, null);
      }
      writeConfig({ ...current, url, token }, file);
      done(cmd, { url, configFile: file }, `logged in to ${url} (token stored in ${file})`);
    });
  root
    .command('logout')
    .description('remove the token from the config file')
    .action((_o: unknown, cmd: Command) => {
      const file = configPath();
      const current = readConfig(file);
      delete current.token;
      writeConfig(current, file);
      done(cmd, { configFile: file }, `token removed from ${file}`);
    });

  const tenant = group('tenant', 'tenants (platform admin)');
  tenant
    .command('create <name>')
    .description('create a tenant')
    .action(async (name: string, _o: unknown, cmd: Command) => show(cmd, await client().createTenant(name)));

  const shard = group('shard', 'logical shards of the metadata (platform admin)');
  shard
    .command('move <shard> <database>')
    .description('move a logical shard (0-7) to another database of the shard map while the platform serves; prints the shardMove workflow id (its phase: DotgitStatus in the Temporal UI)')
    .action(async (s: string, database: string, _o: unknown, cmd: Command) => {
      if (!/^[0-7]$/.test(s)) throw new UsageError(`<shard> must be a logical shard number, 0 to 7, got '${s}'`);
      const m = await client().moveShard(Number(s), database);
      show(cmd, m, `moving shard ${m.shard} from ${m.from} to ${m.to}: workflow ${m.id}`);
    });

  const db = group('db', 'the metadata database (platform admin)');
  db
    .command('switchover')
    .description('move the Postgres primary to a standby, planned (Patroni; ADR 0027): starts the dbSwitchover workflow and prints its id')
    .option('--candidate <member>', 'the Patroni member to promote (default the synchronous standby)')
    .action(async (o: { candidate?: string }, cmd: Command) => {
      const s = await client().switchover(o.candidate);
      show(cmd, s, `switchover started: workflow ${s.id} (Temporal UI); the primary moves in a few seconds`);
    });

  const user = group('user', 'users of a tenant (tenant admin)');
  user
    .command('create <tenant> <username>')
    .description('create a user in a tenant')
    .addOption(new Option('--role <role>', 'the user\'s role').choices(['admin', 'member', 'reader']).default('member'))
    .action(async (t: string, username: string, o: { role: 'admin' | 'member' | 'reader' }, cmd: Command) => show(cmd, await client().createUser(t, username, o.role)));

  const token = group('token', 'API tokens');
  token
    .command('create')
    .description('create a token (shown once), for yourself or, as a tenant admin, for --user')
    .option('--user <username>', 'the user the token is for')
    .option('--scopes <list>', 'comma-separated: read, write, admin', 'read')
    .option('--expires <iso-date>', 'when it stops working')
    .action(async (o: { user?: string; scopes: string; expires?: string }, cmd: Command) => {
      const scopes = o.scopes.split(',').map((s) => s.trim());
      const bad = scopes.filter((s) => !['read', 'write', 'admin'].includes(s));
      if (bad.length) throw new UsageError(`unknown scope ${bad.join(', ')} (read, write, admin)`);
      const t = await client().createToken(scopes as 'read'[], { username: o.user, expiresAt: o.expires });
      show(cmd, t, globals(cmd).json ? undefined : `${t.token}\n`);
      if (!globals(cmd).json) err(`token ${t.id} created; it is shown only this once`);
    });
  token
    .command('revoke <id>')
    .description('revoke a token: it stops working at once')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      if (!/^\d+$/.test(id)) throw new UsageError(`a token id is a number, got '${id}'`);
      await client().revokeToken(Number(id));
      done(cmd, { id: Number(id), revoked: true }, `token ${id} revoked`);
    });

  token
    .command('list')
    .description('your live tokens: id, scopes, created, expires (never the secrets)')
    .option('--after <id>', "tokens after this id (the answer's next)")
    .option('--limit <n>', 'at most this many (1-1000, default 100)')
    .action(async (o: { after?: string; limit?: string }, cmd: Command) => {
      const page = await client().listTokens(pageOptions(o));
      if (globals(cmd).json) return out(JSON.stringify(page, null, 2));
      list(cmd, page.tokens.map((t) => ({ ...t, scopes: t.scopes.join(','), expiresAt: t.expiresAt ?? 'never', current: t.current ? '(this token)' : '' })), ['id', 'scopes', 'createdAt', 'expiresAt', 'current']);
      if (page.next !== null) err(`more: --after ${page.next}`);
    });

  const repo = group('repo', 'repositories');
  repo
    .command('list [owner]')
    .description("repositories you may read (only OWNER's when given), public ones without a token")
    .option('--after <id>', "repositories after this id (the answer's next)")
    .option('--limit <n>', 'at most this many (1-1000, default 100)')
    .action(async (owner: string | undefined, o: { after?: string; limit?: string }, cmd: Command) => {
      const page = await client().listRepos({ owner, ...pageOptions(o) });
      if (globals(cmd).json) return out(JSON.stringify(page, null, 2));
      list(cmd, page.repos.map((r) => ({ ...r, fullName: `${r.owner}/${r.name}` })), ['fullName', 'visibility', 'defaultBranch', 'cloneUrl']);
      if (page.next !== null) err(`more: --after ${page.next}`);
    });
  repo
    .command('create <owner/name>')
    .description('create a repository (private unless --public)')
    .option('--public', 'anyone can clone it')
    .action(async (r: string, o: { public?: boolean }, cmd: Command) => show(cmd, await client().createRepo(...ownerRepo(r), o.public ? 'public' : 'private')));
  repo
    .command('view <owner/name>')
    .alias('show')
    .description('show a repository')
    .action(async (r: string, _o: unknown, cmd: Command) => show(cmd, await client().getRepo(...ownerRepo(r))));
  repo
    .command('default-branch <owner/name> [branch]')
    .description('show the default branch (HEAD), or set it to BRANCH (repository admin)')
    .action(async (r: string, branch: string | undefined, _o: unknown, cmd: Command) => {
      const api = client();
      const answer = branch === undefined ? await api.getRepo(...ownerRepo(r)) : await api.setDefaultBranch(...ownerRepo(r), branch);
      show(cmd, answer, String(answer.defaultBranch ?? '(unknown)'));
    });

  const run = group('run', 'pipeline runs');
  run
    .command('list <owner/name>')
    .description('runs of a repository, newest first')
    .option('--ref <ref>', 'only runs of this ref')
    .option('--commit <sha>', 'only runs of this commit')
    .option('--status <status>', 'queued, running, success, failure or cancelled')
    .action(async (r: string, o: { ref?: string; commit?: string; status?: string }, cmd: Command) =>
      list(cmd, await client().listRuns(...ownerRepo(r), o), ['id', 'status', 'ref', 'createdAt']),
    );
  run
    .command('view <id>')
    .description('a run: status and steps (exit 1 with --wait when it does not succeed)')
    .option('--wait', 'wait until it ends')
    .action(async (id: string, o: { wait?: boolean }, cmd: Command) => {
      const api = client();
      if (o.wait) await follow(api, 'run', id, { logs: false, progress: !globals(cmd).json });
      const r = await api.getRun(id);
      show(cmd, r, runLine(r));
      if (o.wait) failIfUnsuccessful('run', r);
    });
  run
    .command('watch <id>')
    .description('follow a run live (log lines on stdout, a step progress line on stderr); exit 1 unless it succeeds')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const api = client();
      await follow(api, 'run', id, { logs: true, json: globals(cmd).json, progress: true });
      const r = await api.getRun(id);
      if (!globals(cmd).json) err(runLine(r));
      failIfUnsuccessful('run', r);
    });
  run
    .command('start <owner/name>')
    .description('start a run of a ref by hand (push filters do not apply)')
    .requiredOption('--ref <ref>', 'the branch, tag or commit')
    .option('--input <name=value>', 'a value of an input the pipeline file declares (on.manual.inputs); repeatable', (kv: string, all: Record<string, string> = {}) => {
      const i = kv.indexOf('=');
      if (i <= 0) throw new UsageError(`--input ${kv}: expected name=value`);
      return { ...all, [kv.slice(0, i)]: kv.slice(i + 1) };
    })
    .option('--wait', 'wait until it ends; exit 1 unless it succeeds')
    .action(async (r: string, o: { ref: string; input?: Record<string, string>; wait?: boolean }, cmd: Command) => {
      const api = client();
      const started = await api.startRun(...ownerRepo(r), o.ref, o.input);
      if (!o.wait) return show(cmd, started, started.id);
      await follow(api, 'run', started.id, { logs: false, progress: !globals(cmd).json });
      const final = await api.getRun(started.id);
      show(cmd, final, runLine(final));
      failIfUnsuccessful('run', final);
    });
  run
    .command('cancel <id>')
    .description('cancel a run')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      await client().cancelRun(id);
      done(cmd, { id, cancelling: true }, `run ${id} is being cancelled`);
    });
  run
    .command('rerun <id>')
    .description('run a run that ended again, as its next attempt (its other jobs, artifacts and outputs stand)')
    .option('--failed-only', 'only the jobs that did not succeed, and the jobs that need them')
    .option('--wait', 'wait until the attempt ends; exit 1 unless it succeeds')
    .action(async (id: string, o: { failedOnly?: boolean; wait?: boolean }, cmd: Command) => {
      const api = client();
      const started = await api.rerunRun(id, Boolean(o.failedOnly));
      if (!o.wait) return show(cmd, started, `run ${id} attempt ${started.attempt}`);
      await follow(api, 'run', id, { logs: false, progress: !globals(cmd).json });
      const final = await api.getRun(id);
      show(cmd, final, `${runLine(final)} (attempt ${final.attempt})`);
      failIfUnsuccessful('run', final);
    });

  const cache = group('cache', "a repository's pipeline dependency caches");
  cache
    .command('list <owner/name>')
    .description('caches, most recently used first, and their total size')
    .option('--ref <ref>', 'only those saved for this ref (refs/heads/main)')
    .option('--key <prefix>', 'only those whose key starts with this')
    .action(async (r: string, o: { ref?: string; key?: string }, cmd: Command) => {
      const answer = await client().listCaches(...ownerRepo(r), o);
      if (globals(cmd).json) return show(cmd, answer, '');
      list(cmd, answer.caches, ['id', 'key', 'ref', 'size', 'lastUsedAt']);
      err(`${answer.caches.length} caches, ${answer.totalBytes} of ${answer.limitBytes} bytes`);
    });
  cache
    .command('view <owner/name> <id>')
    .description('one cache: key, ref, size, the run that saved it, when it was last used')
    .action(async (r: string, id: string, _o: unknown, cmd: Command) => {
      const c = await client().getCache(...ownerRepo(r), id);
      show(cmd, c, `${c.id}\t${c.key}\t${c.ref}\t${c.size} bytes\tsaved by ${c.runId ?? '?'} (${c.job ?? '?'})\tlast used ${c.lastUsedAt}`);
    });
  cache
    .command('delete <owner/name> <id>')
    .description('delete a cache (write access)')
    .action(async (r: string, id: string, _o: unknown, cmd: Command) => {
      const [owner, repoName] = ownerRepo(r);
      await client().deleteCache(owner, repoName, id);
      done(cmd, { repo: `${owner}/${repoName}`, id: Number(id), deleted: true }, `cache ${id} deleted from ${owner}/${repoName}`);
    });

  root
    .command('logs <run-id>')
    .description("a run's logs: the whole log of every step (or one job/step), or followed live with --follow")
    .option('--job <job>', 'only this job')
    .option('--step <step>', 'only this step')
    .option('-f, --follow', 'stream lines as they are printed until the run ends; exit 1 unless it succeeds')
    .option('--attempt <n>', "an earlier attempt's stored logs (default: the latest)", (v) => {
      if (!/^[1-9]\d*$/.test(v)) throw new InvalidArgumentError('a whole number from 1');
      return Number(v);
    })
    .action(async (id: string, o: { job?: string; step?: string; follow?: boolean; attempt?: number }, cmd: Command) => {
      const api = client();
      if (!o.follow) return void process.stdout.write(await api.logs(id, o.job, o.step, o.attempt));
      await follow(api, 'run', id, { logs: true, json: globals(cmd).json, job: o.job, step: o.step, progress: true });
      failIfUnsuccessful('run', await api.getRun(id));
    });

  const artifacts = group('artifacts', "a run's artifacts");
  artifacts
    .command('list <run-id>')
    .description('the artifacts of a run')
    .action(async (id: string, _o: unknown, cmd: Command) => list(cmd, await client().artifacts(id), ['path', 'size', 'job', 'sha256']));
  artifacts
    .command('download <run-id> [paths...]')
    .description('download artifacts (all without PATHS) into --dir, keeping their paths')
    .option('--dir <dir>', 'where to write them', '.')
    .action(async (id: string, paths: string[], o: { dir: string }, cmd: Command) => {
      const api = client();
      const all = await api.artifacts(id);
      const chosen = paths.length ? paths : all.map((a) => a.path);
      const missing = chosen.filter((p) => !all.some((a) => a.path === p));
      if (missing.length) throw new DotgitApiError(404, 'not_found', `run ${id} has no artifact ${missing.join(', ')}`, null);
      const root = path.resolve(o.dir);
      const written: { path: string; file: string; size: number }[] = [];
      for (const p of chosen) {
        const file = path.resolve(root, p);
        // Artifact paths come from the server: never write outside --dir.
        if (!file.startsWith(root + path.sep)) throw new Error(`artifact path ${p} leaves ${root}; not written`);
        const bytes = await api.artifact(id, p);
        mkdirSync(path.dirname(file), { recursive: true });
        writeFileSync(file, bytes);
        written.push({ path: p, file, size: bytes.length });
      }
      list(cmd, written, ['file', 'size']);
    });

  const secret = group('secret', 'pipeline secrets (write-only)');
  secret
    .command('set <owner/name> <name>')
    .description('set a secret; the value is read from stdin (one trailing newline dropped) unless --body')
    .option('--environment <env>', 'only for deploys to this environment')
    .option('--body <value>', 'the value (visible in the process list: prefer stdin)')
    .action(async (r: string, name: string, o: { environment?: string; body?: string }, cmd: Command) => {
      const value = o.body ?? (await readStdin()).replace(/\r?\n$/, '');
      const [owner, repoName] = ownerRepo(r);
      await client().setSecret(owner, repoName, name, value, o.environment);
      done(cmd, { repo: `${owner}/${repoName}`, name, environment: o.environment ?? null }, `secret ${name} set for ${owner}/${repoName}${o.environment ? ` (environment ${o.environment})` : ''}`);
    });

  secret
    .command('list <owner/name>')
    .description('names of the secrets set (values are never shown)')
    .action(async (r: string, _o: unknown, cmd: Command) => list(cmd, await client().listSecrets(...ownerRepo(r)), ['name', 'environment', 'updatedBy', 'updatedAt']));
  secret
    .command('delete <owner/name> <name>')
    .description('remove a secret')
    .option('--environment <env>', 'the environment-only value of that name')
    .action(async (r: string, name: string, o: { environment?: string }, cmd: Command) => {
      const [owner, repoName] = ownerRepo(r);
      await client().deleteSecret(owner, repoName, name, o.environment);
      done(cmd, { repo: `${owner}/${repoName}`, name, environment: o.environment ?? null, deleted: true }, `secret ${name} deleted from ${owner}/${repoName}`);
    });

  const deploy = group('deploy', 'deploys to environments');
  deploy
    .command('create <owner/name> <environment>')
    .description('ask for a deploy of a ref to an environment')
    .requiredOption('--ref <ref>', 'the branch, tag or commit')
    .option('--wait', 'wait until it ends; exit 1 unless it succeeds (an approval gate waits for its answer)')
    .action(async (r: string, env: string, o: { ref: string; wait?: boolean }, cmd: Command) => {
      const api = client();
      const d = await api.deploy(...ownerRepo(r), env, o.ref);
      if (!o.wait) return show(cmd, d, d.id);
      await follow(api, 'deploy', d.id, { logs: false, progress: !globals(cmd).json });
      const final = await api.getDeploy(d.id);
      show(cmd, final, deployLine(final));
      failIfUnsuccessful('deploy', final);
    });
  deploy
    .command('view <id>')
    .alias('show')
    .description('a deploy: status, steps, who decided')
    .option('--wait', 'wait until it ends; exit 1 unless it succeeds')
    .action(async (id: string, o: { wait?: boolean }, cmd: Command) => {
      const api = client();
      if (o.wait) await follow(api, 'deploy', id, { logs: false, progress: !globals(cmd).json });
      const d = await api.getDeploy(id);
      show(cmd, d, deployLine(d));
      if (o.wait) failIfUnsuccessful('deploy', d);
    });
  deploy
    .command('watch <id>')
    .description('follow a deploy live (log lines on stdout, progress on stderr); exit 1 unless it succeeds')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const api = client();
      await follow(api, 'deploy', id, { logs: true, json: globals(cmd).json, progress: true });
      const d = await api.getDeploy(id);
      if (!globals(cmd).json) err(deployLine(d));
      failIfUnsuccessful('deploy', d);
    });
  deploy
    .command('list <owner/name>')
    .description('deploys of a repository, newest first')
    .option('--environment <env>', 'only this environment')
    .action(async (r: string, o: { environment?: string }, cmd: Command) =>
      list(cmd, await client().listDeploys(...ownerRepo(r), o.environment), ['id', 'status', 'environment', 'ref', 'createdAt']),
    );
  for (const decision of ['approve', 'reject'] as const) {
    deploy
      .command(`${decision} <id>`)
      .description(`${decision} a deploy waiting at its approval gate`)
      .option('--comment <text>', 'recorded with the decision')
      .action(async (id: string, o: { comment?: string }, cmd: Command) => show(cmd, await client().decideDeploy(id, decision, o.comment)));
  }
  deploy
    .command('cancel <id>')
    .description('cancel a deploy')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      await client().cancelDeploy(id);
      done(cmd, { id, cancelling: true }, `deploy ${id} is being cancelled`);
    });

  const audit = group('audit', 'the tamper-evident audit log');
  audit
    .command('list')
    .description('audit events, oldest first (tenant admins: their tenant; platform admins: any or all)')
    .option('--tenant <name>', 'only this tenant')
    .option('--after <id>', 'events after this event id (the answer\'s next)')
    .option('--limit <n>', 'at most this many (1-1000, default 100)')
    .action(async (o: { tenant?: string; after?: string; limit?: string }, cmd: Command) => {
      for (const [k, v] of [['after', o.after], ['limit', o.limit]] as const) {
        if (v !== undefined && !/^\d+$/.test(v)) throw new UsageError(`--${k} must be a whole number, got '${v}'`);
      }
      const page = await client().listAudit({ tenant: o.tenant, after: o.after === undefined ? undefined : Number(o.after), limit: o.limit === undefined ? undefined : Number(o.limit) });
      if (globals(cmd).json) return out(JSON.stringify(page, null, 2));
      list(cmd, page.events, ['id', 'at', 'tenant', 'actor', 'action', 'target']);
      if (page.next !== null) err(`more: --after ${page.next}`);
    });
  audit
    .command('verify')
    .description("check the audit log's hash chains (platform admin); exit 1 when a link is broken")
    .option('--tenant <name>', "only the chain of this tenant's shard")
    .action(async (o: { tenant?: string }, cmd: Command) => {
      const v = await client().verifyAudit(o.tenant);
      const broken = v.firstBroken;
      show(
        cmd,
        v,
        broken
          ? `audit log BROKEN: shard ${broken.shard}, seq ${broken.seq}${broken.id !== null ? ` (event ${broken.id})` : ''}: ${broken.reason} (${v.checked} links checked)`
          : `audit log intact: ${v.checked} links checked${v.unchained ? ` (${v.unchained} older events are not chained)` : ''}`,
      );
      if (!v.ok) throw new Failed('the audit log does not verify');
    });

  return root;
}

/** An error's message, with its cause's ("fetch failed" alone says nothing of the refused connection). */
function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = e.cause instanceof Error ? e.cause.message || (e.cause as { code?: string }).code : undefined;
  return cause ? `${e.message} (${cause})` : e.message;
}

/** Runs one command line; answers the exit code (never exits the process itself). */
export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (e) {
    const code = exitCode(e);
    // commander has already printed its own message (and the help) for usage errors.
    if (!(e instanceof CommanderError)) err(`dotgit: ${describe(e)}`);
    // Signed out (or never signed in), a refusal or a private repository's 404 says why, as gh does.
    if (e instanceof DotgitApiError && (e.status === 401 || e.status === 404) && !resolveTarget().token) {
      err('dotgit: not signed in: run `dotgit login` (or set DOTGIT_TOKEN); without credentials only public repositories can be seen');
    }
    return code;
  }
}

/** The process entry (cli/bin.cjs, or `node --import tsx cli/dotgit.ts`). */
export function run(): void {
  // `dotgit … | head` closes the pipe early: stop quietly, as other commands do, instead of an EPIPE trace.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  void main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}

if (require.main === module) run();
