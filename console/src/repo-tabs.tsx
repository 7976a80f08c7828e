import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, enc } from './api';
import { ago, duration } from './format';
import { Badge } from './run-page';

interface Deploy {
  id: string;
  environment: string;
  ref: string;
  commit: string | null;
  status: string;
  message: string | null;
  requestedBy: string;
  decidedBy: string | null;
  rollbackTo: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

const LIVE = new Set(['queued', 'waiting_approval', 'running']);

/** Loads `url` now and every `everyMs` (runs and deploys progress without a reload). */
function usePolled<T>(url: string, everyMs = 5000): { data: T | null; error: string | null; reload: () => void } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [n, setN] = useState(0);
  useEffect(() => {
    let gone = false;
    const load = () => api.get<T>(url).then((d) => !gone && (setData(d), setError(null)), (e: ApiError) => !gone && setError(e.message));
    void load();
    const t = everyMs ? window.setInterval(() => void load(), everyMs) : undefined;
    return () => {
      gone = true;
      clearInterval(t);
    };
  }, [url, n]);
  return { data, error, reload: () => setN((x) => x + 1) };
}

/** Environments with what is deployed now, the history, and approve / reject / cancel where allowed. */
export function Deploys({ owner, repo }: { owner: string; repo: string }) {
  const base = `/api/v1/repos/${enc(owner)}/${enc(repo)}/deploys`;
  const { data, error, reload } = usePolled<{ deploys: Deploy[] }>(base);
  const [note, setNote] = useState<string | null>(null);
  const [ref, setRef] = useState('main');
  const [environment, setEnvironment] = useState('');
  const act = (id: string, action: string) =>
    api.post(`/api/v1/deploys/${enc(id)}/${action}`, {}).then(
      () => {
        setNote(`${action} requested`);
        reload();
      },
      (e: ApiError) => setNote(e.message),
    );
  const deploys = data?.deploys ?? [];
  const current = new Map<string, Deploy>();
  for (const d of [...deploys].reverse()) if (d.status === 'success') current.set(d.environment, d);
  const envs = [...new Set(deploys.map((d) => d.environment))];
  return (
    <section>
      {error && <p class="error">{error}</p>}
      {note && <p class="note" role="status">{note}</p>}
      <h2>Environments</h2>
      {envs.length === 0 && <p class="muted">No deploys yet.</p>}
      <ul class="list">
        {envs.map((e) => (
          <li key={e}>
            <strong>{e}</strong>{' '}
            {current.get(e) ? (
              <span>
                {current.get(e)!.ref} <code>{current.get(e)!.commit?.slice(0, 10)}</code> <span class="muted">{ago(current.get(e)!.finishedAt)}</span>
              </span>
            ) : (
              <span class="muted">nothing deployed successfully</span>
            )}
          </li>
        ))}
      </ul>
      <h2>Deploy</h2>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          api.post(base, { ref, environment }).then(() => reload(), (err: ApiError) => setNote(err.message));
        }}
      >
        <label>
          ref <input value={ref} onInput={(e) => setRef((e.target as HTMLInputElement).value)} required />
        </label>
        <label>
          environment <input value={environment} onInput={(e) => setEnvironment((e.target as HTMLInputElement).value)} required />
        </label>
        <button type="submit">Deploy</button>
      </form>
      <h2>History</h2>
      <table class="runs">
        <tbody>
          {deploys.map((d) => (
            <tr key={d.id}>
              <td>
                <Badge status={d.status} />
              </td>
              <td>{d.environment}</td>
              <td>
                {d.ref} <code>{d.commit?.slice(0, 10)}</code>
              </td>
              <td class="muted">
                {d.requestedBy}
                {d.decidedBy ? `, decided by ${d.decidedBy}` : ''}
                {d.rollbackTo ? `, rolled back to ${d.rollbackTo.slice(0, 10)}` : ''}
              </td>
              <td class="muted">
                {ago(d.createdAt)} {duration(d.startedAt, d.finishedAt)}
              </td>
              <td>
                {d.status === 'waiting_approval' && (
                  <>
                    <button onClick={() => void act(d.id, 'approve')}>Approve</button> <button onClick={() => void act(d.id, 'reject')}>Reject</button>{' '}
                  </>
                )}
                {LIVE.has(d.status) && (
                  <button class="danger" onClick={() => void act(d.id, 'cancel')}>
                    Cancel
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** Repository settings (admins): secrets by name, webhooks with their delivery log, protected branches, collaborators. */
export function RepoSettings({ owner, repo }: { owner: string; repo: string }) {
  const base = `/api/v1/repos/${enc(owner)}/${enc(repo)}`;
  const secrets = usePolled<{ secrets: Array<{ name: string; environment: string | null; updatedBy: string; updatedAt: string }> }>(`${base}/secrets`, 0);
  const hooks = usePolled<{ webhooks: Array<{ id: number; url: string; events: string[] }> }>(`${base}/webhooks`, 0);
  const collaborators = usePolled<{ collaborators: Array<{ username: string; access: string }> }>(`${base}/collaborators`, 0);
  const protections = usePolled<{ protections: Array<{ pattern: string; allowForcePush: boolean; allowDeletion: boolean; pushers?: string[] }> }>(`${base}/protections`, 0);
  const [grant, setGrant] = useState({ username: '', access: 'read' });
  const [rule, setRule] = useState({ pattern: '', allowForcePush: false, allowDeletion: false });
  // Branch patterns keep their slashes (`release/*`): each segment is encoded on its own.
  const patternPath = (p: string) => p.split('/').map(enc).join('/');
  const [note, setNote] = useState<string | null>(null);
  const [secret, setSecret] = useState({ name: '', value: '', environment: '' });
  const [hook, setHook] = useState({ url: '', secret: '' });
  const [open, setOpen] = useState<number | null>(null);
  const fail = (e: ApiError) => setNote(e.message);
  return (
    <section>
      {note && <p class="note" role="status">{note}</p>}
      <h2>Secrets</h2>
      {secrets.error && <p class="error">{secrets.error}</p>}
      <ul class="list">
        {secrets.data?.secrets.map((s) => (
          <li key={`${s.name}/${s.environment ?? ''}`}>
            <code>{s.name}</code> {s.environment && <span class="muted">({s.environment})</span>} <span class="muted">set by {s.updatedBy} {ago(s.updatedAt)}</span>{' '}
            <button class="link" onClick={() => void api.del(`${base}/secrets/${enc(s.name)}${s.environment ? `?environment=${enc(s.environment)}` : ''}`).then(secrets.reload, fail)}>
              delete
            </button>
          </li>
        ))}
      </ul>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          api.put(`${base}/secrets/${enc(secret.name)}`, { value: secret.value, ...(secret.environment ? { environment: secret.environment } : {}) }).then(() => {
            setSecret({ name: '', value: '', environment: '' });
            secrets.reload();
          }, fail);
        }}
      >
        <label>
          secret name <input value={secret.name} onInput={(e) => setSecret({ ...secret, name: (e.target as HTMLInputElement).value })} required />
        </label>
        <label>
          value <input type="password" autoComplete="off" value={secret.value} onInput={(e) => setSecret({ ...secret, value: (e.target as HTMLInputElement).value })} required />
        </label>
        <label>
          environment <input value={secret.environment} placeholder="all" onInput={(e) => setSecret({ ...secret, environment: (e.target as HTMLInputElement).value })} />
        </label>
        <button type="submit">Set</button>
      </form>
      <h2>Webhooks</h2>
      {hooks.error && <p class="error">{hooks.error}</p>}
      <ul class="list">
        {hooks.data?.webhooks.map((h) => (
          <li key={h.id}>
            <code>{h.url}</code> <span class="muted">{h.events.join(', ')}</span>{' '}
            <button class="link" onClick={() => setOpen(open === h.id ? null : h.id)}>
              deliveries
            </button>{' '}
            <button class="link" onClick={() => void api.del(`${base}/webhooks/${h.id}`).then(hooks.reload, fail)}>
              delete
            </button>
            {open === h.id && <Deliveries url={`${base}/webhooks/${h.id}/deliveries`} />}
          </li>
        ))}
      </ul>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          api.post(`${base}/webhooks`, { url: hook.url, secret: hook.secret, events: ['*'] }).then(() => {
            setHook({ url: '', secret: '' });
            hooks.reload();
          }, fail);
        }}
      >
        <label>
          webhook URL <input type="url" value={hook.url} onInput={(e) => setHook({ ...hook, url: (e.target as HTMLInputElement).value })} required />
        </label>
        <label>
          signing secret <input type="password" autoComplete="off" value={hook.secret} onInput={(e) => setHook({ ...hook, secret: (e.target as HTMLInputElement).value })} required />
        </label>
        <button type="submit">Add</button>
      </form>
      <h2>Protected branches</h2>
      {protections.error && <p class="error">{protections.error}</p>}
      <ul class="list">
        {protections.data?.protections.map((p) => (
          <li key={p.pattern}>
            <code>{p.pattern}</code>{' '}
            <span class="muted">
              {p.allowForcePush ? 'force push allowed' : 'no force push'}, {p.allowDeletion ? 'deletion allowed' : 'no deletion'}
              {p.pushers ? `, only ${p.pushers.join(', ')} may push` : ''}
            </span>{' '}
            <button class="link" onClick={() => void api.del(`${base}/protections/${patternPath(p.pattern)}`).then(protections.reload, fail)}>
              lift
            </button>
          </li>
        ))}
      </ul>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          api.put(`${base}/protections/${patternPath(rule.pattern)}`, { allowForcePush: rule.allowForcePush, allowDeletion: rule.allowDeletion }).then(() => {
            setRule({ pattern: '', allowForcePush: false, allowDeletion: false });
            protections.reload();
          }, fail);
        }}
      >
        <label>
          branch or pattern <input value={rule.pattern} placeholder="main" onInput={(e) => setRule({ ...rule, pattern: (e.target as HTMLInputElement).value })} required />
        </label>
        <label>
          <input type="checkbox" checked={rule.allowForcePush} onChange={(e) => setRule({ ...rule, allowForcePush: (e.target as HTMLInputElement).checked })} /> allow force push
        </label>
        <label>
          <input type="checkbox" checked={rule.allowDeletion} onChange={(e) => setRule({ ...rule, allowDeletion: (e.target as HTMLInputElement).checked })} /> allow deletion
        </label>
        <button type="submit">Protect</button>
      </form>
      <h2>Collaborators</h2>
      {collaborators.error && <p class="error">{collaborators.error}</p>}
      <ul class="list">
        {collaborators.data?.collaborators.map((c) => (
          <li key={c.username}>
            {c.username} <span class="muted">{c.access}</span>{' '}
            <button class="link" onClick={() => void api.del(`${base}/collaborators/${enc(c.username)}`).then(collaborators.reload, fail)}>
              remove
            </button>
          </li>
        ))}
      </ul>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          api.put(`${base}/collaborators/${enc(grant.username)}`, { access: grant.access }).then(() => {
            setGrant({ username: '', access: 'read' });
            collaborators.reload();
          }, fail);
        }}
      >
        <label>
          collaborator <input value={grant.username} onInput={(e) => setGrant({ ...grant, username: (e.target as HTMLInputElement).value })} required />
        </label>
        <label>
          access{' '}
          <select value={grant.access} onChange={(e) => setGrant({ ...grant, access: (e.target as HTMLSelectElement).value })}>
            <option>read</option>
            <option>write</option>
            <option>admin</option>
          </select>
        </label>
        <button type="submit">Grant</button>
      </form>
    </section>
  );
}

interface Delivery {
  deliveryId: string;
  event: string;
  action: string | null;
  attempt: number;
  outcome: string;
  responseStatus: number | null;
  error: string | null;
  startedAt: string;
}

/** A webhook's delivery log (every attempt, newest first; refreshed every 5 s) with Redeliver on each delivery. */
function Deliveries({ url }: { url: string }) {
  const { data, error, reload } = usePolled<{ deliveries: Delivery[] }>(url);
  const [note, setNote] = useState<string | null>(null);
  if (error) return <p class="error">{error}</p>;
  const seen = new Set<string>();
  return (
    <>
      {note && <p class="note" role="status">{note}</p>}
      <ul class="list deliveries">
        {data?.deliveries.map((d) => {
          // Redeliver once per delivery (on its newest attempt), not on every retry.
          const first = !seen.has(d.deliveryId);
          seen.add(d.deliveryId);
          return (
            <li key={`${d.deliveryId}/${d.attempt}`}>
              {d.event}
              {d.action ? `.${d.action}` : ''} <span class={`badge s-${d.outcome}`}>{d.outcome}</span> {d.responseStatus ?? ''} <span class="muted">attempt {d.attempt} · {ago(d.startedAt)} · <code>{d.deliveryId.slice(0, 8)}</code></span>
              {d.error && <span class="muted"> {d.error}</span>}{' '}
              {first && (
                <button
                  class="link"
                  onClick={() =>
                    void api.post(`${url}/${enc(d.deliveryId)}/redeliver`).then(
                      () => {
                        setNote(`delivery ${d.deliveryId.slice(0, 8)} sent again`);
                        reload();
                      },
                      (e: ApiError) => setNote(e.message),
                    )
                  }
                >
                  Redeliver
                </button>
              )}
            </li>
          );
        })}
        {data && data.deliveries.length === 0 && <li class="muted">no deliveries yet</li>}
      </ul>
    </>
  );
}

/** The signed-in user's own live tokens: create one (shown once), revoke one. */
export function Tokens() {
  const { data, error, reload } = usePolled<{ tokens: Array<{ id: number; scopes: string[]; createdAt: string; expiresAt: string | null; current: boolean }> }>('/api/v1/tokens', 0);
  const [made, setMade] = useState<string | null>(null);
  const [scopes, setScopes] = useState('read');
  const [note, setNote] = useState<string | null>(null);
  return (
    <section>
      <h1>Tokens</h1>
      {error && <p class="error">{error}</p>}
      {note && <p class="note">{note}</p>}
      {made && (
        <p>
          New token (shown once): <code class="clone">{made}</code>
        </p>
      )}
      <table class="runs">
        <tbody>
          {data?.tokens.map((t) => (
            <tr key={t.id}>
              <td>#{t.id}</td>
              <td>{t.scopes.join(', ')}</td>
              <td class="muted">created {ago(t.createdAt)}</td>
              <td class="muted">{t.expiresAt ? `expires ${new Date(t.expiresAt).toLocaleString()}` : 'no expiry'}</td>
              <td>
                {t.current ? (
                  <span class="muted">this session's token</span>
                ) : (
                  <button class="danger" onClick={() => void api.del(`/api/v1/tokens/${t.id}`).then(reload, (e: ApiError) => setNote(e.message))}>
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          api.post<{ token: string }>('/api/v1/tokens', { scopes: scopes.split(',') }).then((t) => {
            setMade(t.token);
            reload();
          }, (err: ApiError) => setNote(err.message));
        }}
      >
        <label>
          scopes{' '}
          <select value={scopes} onChange={(e) => setScopes((e.target as HTMLSelectElement).value)}>
            <option value="read">read</option>
            <option value="read,write">read, write</option>
            <option value="read,write,admin">read, write, admin</option>
          </select>
        </label>
        <button type="submit">Create token</button>
      </form>
    </section>
  );
}
