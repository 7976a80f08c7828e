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

/**
 * Administration: users of your tenant (tenant admins), and for platform admins tenants and backups.
 * The API decides who may do what; a refused action shows its message.
 */
export function Admin() {
  const s = currentSession()!;
  const [note, setNote] = useState<string | null>(null);
  const [user, setUser] = useState({ tenant: s.tenant, username: '', role: 'member' });
  const [tenant, setTenant] = useState('');
  const [backups, setBackups] = useState<Backup[] | null>(null);
  const fail = (e: ApiError) => setNote(e.message);
  const loadBackups = () => api.get<{ backups: Backup[] }>('/api/v1/backups').then((b) => setBackups(b.backups), fail);
  useEffect(() => {
    if (s.platformAdmin) void loadBackups();
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
            setNote(`user ${u.username} added as ${u.role}; give them a token from the CLI (dotgit token create --user ${u.username})`);
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
        </>
      )}
    </section>
  );
}
