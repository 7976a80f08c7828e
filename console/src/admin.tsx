import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, currentSession, enc } from './api';
import { ago, duration } from './format';
import { Badge } from './run-page';

interface Backup {
  id: string;
  trigger: string;
  status: string;
  startedAt: string;
  finishedAt: string | null;
  repos: number | null;
  changed: number | null;
}

interface Restore {
  id: string;
  kind: string;
  status: string;
  backupId: string | null;
  problems: string[];
  startedAt: string;
  finishedAt: string | null;
}

interface Replication {
  database: { primary: string | null; standbys: { name: string; lagBytes: number | null; lagSeconds: number | null; inReads: boolean; error: string | null }[] } | null;
  zones: { name: string; kind: string }[];
}

/**
 * Administration: users of your tenant (tenant admins), and for platform admins tenants, backups, restore drills and replica status.
 * The API decides who may do what; a refused action shows its message.
 */
export function Admin() {
  const s = currentSession()!;
  const [note, setNote] = useState<string | null>(null);
  const [user, setUser] = useState({ tenant: s.tenant, username: '', role: 'member' });
  const [tenant, setTenant] = useState('');
  const [backups, setBackups] = useState<Backup[] | null>(null);
  // The user just added, and their first token (shown once): the README's walkthrough needs no CLI for it.
  const [added, setAdded] = useState<{ username: string; token?: string } | null>(null);
  const fail = (e: ApiError) => setNote(e.message);
  const [restores, setRestores] = useState<Restore[] | null>(null);
  const [replication, setReplication] = useState<Replication | null>(null);
  const loadBackups = () => api.get<{ backups: Backup[] }>('/api/v1/backups').then((b) => setBackups(b.backups), fail);
  useEffect(() => {
    if (!s.platformAdmin) return;
    void loadBackups();
    void api.get<{ restores: Restore[] }>('/api/v1/restores').then((r) => setRestores(r.restores), fail);
    void api.get<Replication>('/api/v1/admin/replicas').then(setReplication, fail);
  }, []);
  return (
    <section>
      <h1>Administration</h1>
      {note && (
        <p class="note" role="status">
          {note}
        </p>
      )}
      <h2>Add a user to a tenant</h2>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          api.post<{ username: string; role: string }>(`/api/v1/tenants/${enc(user.tenant)}/users`, { username: user.username, role: user.role }).then((u) => {
            setNote(`user ${u.username} added as ${u.role}`);
            setAdded({ username: u.username });
            setUser({ ...user, username: '' });
          }, fail);
        }}
      >
        <label>
          tenant <input value={user.tenant} onInput={(e) => setUser({ ...user, tenant: (e.target as HTMLInputElement).value })} required />
        </label>
        <label>
          user name <input value={user.username} onInput={(e) => setUser({ ...user, username: (e.target as HTMLInputElement).value })} required />
        </label>
        <label>
          role{' '}
          <select value={user.role} onChange={(e) => setUser({ ...user, role: (e.target as HTMLSelectElement).value })}>
            <option>reader</option>
            <option>member</option>
            <option>admin</option>
          </select>
        </label>
        <button type="submit">Add user</button>
      </form>
      {added && !added.token && (
        <button
          onClick={() =>
            void api.post<{ token: string }>('/api/v1/tokens', { username: added.username, scopes: ['read', 'write', 'admin'] }).then((t) => setAdded({ ...added, token: t.token }), fail)
          }
        >
          Create a token for {added.username}
        </button>
      )}
      {added?.token && (
        <p>
          token for {added.username} (shown once; their role still limits it): <code class="clone" aria-label="new token">{added.token}</code>
        </p>
      )}
      {s.platformAdmin && (
        <>
          <h2>Tenants</h2>
          <form
            class="inline"
            onSubmit={(e) => {
              e.preventDefault();
              api.post<{ name: string }>('/api/v1/tenants', { name: tenant }).then((t) => {
                setNote(`tenant ${t.name} created`);
                setTenant('');
              }, fail);
            }}
          >
            <label>
              new tenant <input value={tenant} onInput={(e) => setTenant((e.target as HTMLInputElement).value)} required />
            </label>
            <button type="submit">Create tenant</button>
          </form>
          <h2>Backups</h2>
          <button onClick={() => void api.post('/api/v1/backups', {}).then(() => (setNote('backup started'), void loadBackups()), fail)}>Back up now</button>
          <table class="runs">
            <tbody>
              {backups?.map((b) => (
                <tr key={b.id}>
                  <td>
                    <Badge status={b.status} />
                  </td>
                  <td>{b.trigger}</td>
                  <td class="muted">{ago(b.startedAt)}</td>
                  <td class="muted">{duration(b.startedAt, b.finishedAt)}</td>
                  <td class="muted">{b.repos === null ? '' : `${b.repos} repositories, ${b.changed ?? 0} changed`}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {backups && backups.length === 0 && <p class="muted">No backups yet.</p>}
          <h2>Restores and restore drills</h2>
          <table class="runs" aria-label="restores">
            <tbody>
              {restores?.map((r) => (
                <tr key={r.id}>
                  <td>
                    <Badge status={r.status} />
                  </td>
                  <td>{r.kind}</td>
                  <td>{r.id}</td>
                  <td class="muted">{ago(r.startedAt)}</td>
                  <td class="muted">{duration(r.startedAt, r.finishedAt)}</td>
                  <td class="muted">{r.backupId ? `from ${r.backupId}` : ''}</td>
                  <td>{r.problems.slice(0, 3).join('; ')}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {restores && restores.length === 0 && <p class="muted">No restores or drills yet (the drill runs daily).</p>}
          <h2>Replicas</h2>
          {replication && (
            <section aria-label="replica status">
              {replication.database ? (
                <table class="runs">
                  <tbody>
                    <tr>
                      <td>primary</td>
                      <td>{replication.database.primary ?? 'unknown'}</td>
                      <td />
                    </tr>
                    {replication.database.standbys.map((r) => (
                      <tr key={r.name}>
                        <td>standby</td>
                        <td>{r.name}</td>
                        <td class="muted">
                          {r.error ?? `${r.lagSeconds === null ? '?' : r.lagSeconds} s / ${r.lagBytes === null ? '?' : r.lagBytes} bytes behind${r.inReads ? ', serving reads' : ', out of reads'}`}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              ) : (
                <p class="muted">Database: one host, no standbys.</p>
              )}
              <p>
                Replica zones: {replication.zones.length === 0 ? 'none' : replication.zones.map((z) => `${z.name} (${z.kind})`).join(', ')}
              </p>
            </section>
          )}
        </>
      )}
    </section>
  );
}
