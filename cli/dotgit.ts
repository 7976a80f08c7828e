import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DotgitApiError, DotgitClient } from './client';

const USAGE = `usage: npm run dotgit -- <command> [args]
  tenant create NAME
  user create TENANT USERNAME [--role admin|member|reader]
  token create [--user USERNAME] [--scopes read,write,admin] [--expires ISO-DATE]
  token revoke ID
  repo create OWNER/NAME [--public]
  repo show OWNER/NAME
  runs OWNER/NAME [--ref REF] [--status STATUS]
  run ID [--wait]
  logs ID [--job JOB] [--step STEP]
  artifacts ID
  cancel ID
  start OWNER/NAME --ref REF                  a run by hand
  secret set OWNER/NAME NAME [--environment ENV]   (the value is read from stdin)
  deploy OWNER/NAME ENVIRONMENT --ref REF [--wait]
  deploy show ID [--wait]
  deploys OWNER/NAME [--environment ENV]
  approve ID [--comment TEXT] | reject ID [--comment TEXT] | deploy cancel ID
environment: DOTGIT_URL (default http://127.0.0.1:8080), DOTGIT_TOKEN (default: .data/admin.token)`;

function token(): string | undefined {
  if (process.env.DOTGIT_TOKEN) return process.env.DOTGIT_TOKEN;
  const file = path.join(process.env.DOTGIT_DATA_DIR ?? '.data', 'admin.token');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function ownerRepo(arg: string | undefined): [string, string] {
  const [owner, name, extra] = (arg ?? '').split('/');
  if (!owner || !name || extra !== undefined) throw new Error('expected OWNER/NAME');
  return [owner, name];
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      role: { type: 'string' },
      user: { type: 'string' },
      scopes: { type: 'string' },
      expires: { type: 'string' },
      public: { type: 'boolean' },
      ref: { type: 'string' },
      status: { type: 'string' },
      job: { type: 'string' },
      step: { type: 'string' },
      wait: { type: 'boolean' },
      environment: { type: 'string' },
      comment: { type: 'string' },
    },
  });
  const client = new DotgitClient(process.env.DOTGIT_URL ?? 'http://127.0.0.1:8080', token());
  const print = (v: unknown): void => {
    process.stdout.write((typeof v === 'string' ? v : JSON.stringify(v, null, 2)) + '\n');
  };
  const [cmd, sub, a, b] = positionals;
  const waitUpdates = { onUpdate: (x: { status: string }) => process.stderr.write(`${x.status}\n`) };
  switch (`${cmd ?? ''} ${['create', 'revoke', 'show', 'set', 'cancel'].includes(sub ?? '') ? sub : ''}`.trim()) {
    case 'tenant create':
      return print(await client.createTenant(a));
    case 'user create':
      return print(await client.createUser(a, b, (values.role ?? 'member') as 'member'));
    case 'token create':
      return print(await client.createToken((values.scopes ?? 'read').split(',') as 'read'[], { username: values.user, expiresAt: values.expires }));
    case 'token revoke':
      return client.revokeToken(Number(a));
    case 'repo create':
      return print(await client.createRepo(...ownerRepo(a), values.public ? 'public' : 'private'));
    case 'repo show':
      return print(await client.getRepo(...ownerRepo(a)));
    case 'runs':
      return print(await client.listRuns(...ownerRepo(sub), { ref: values.ref, status: values.status }));
    case 'run':
      return print(values.wait ? await client.waitForRun(sub, { onUpdate: (r) => process.stderr.write(`${r.status}\n`) }) : await client.getRun(sub));
    case 'logs':
      return print(await client.logs(sub, values.job, values.step));
    case 'artifacts':
      return print(await client.artifacts(sub));
    case 'cancel':
      return client.cancelRun(sub);
    case 'start':
      if (!values.ref) throw new Error('start needs --ref');
      return print(await client.startRun(...ownerRepo(sub), values.ref));
    case 'secret set':
      return client.setSecret(...ownerRepo(a), b, readFileSync(0, 'utf8').replace(/\n$/, ''), values.environment);
    case 'deploy': {
      if (!values.ref || !a) throw new Error('deploy needs OWNER/NAME ENVIRONMENT --ref REF');
      const d = await client.deploy(...ownerRepo(sub), a, values.ref);
      return print(values.wait ? await client.waitForDeploy(d.id, waitUpdates) : d);
    }
    case 'deploy show':
      return print(values.wait ? await client.waitForDeploy(a, waitUpdates) : await client.getDeploy(a));
    case 'deploy cancel':
      return client.cancelDeploy(a);
    case 'deploys':
      return print(await client.listDeploys(...ownerRepo(sub), values.environment));
    case 'approve':
    case 'reject':
      return print(await client.decideDeploy(sub, cmd === 'approve' ? 'approve' : 'reject', values.comment));
    default:
      process.stderr.write(USAGE + '\n');
      process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`dotgit: ${err instanceof DotgitApiError || err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
