import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { Link, Route, Switch, useLocation } from 'wouter-preact';
import { api, ApiError, currentSession, enc, loadSession, onSession, signIn, signOut, type Repo, type Run, type Session } from './api';
import { ago, duration } from './format';
import { Badge, RunPage } from './run-page';
import { Deploys, RepoSettings, Tokens } from './repo-tabs';
import { Admin } from './admin';
import { Branches, Code, Commits } from './code-browser';
import './style.css';

function SignIn() {
  const [, navigate] = useLocation();
  const [error, setError] = useState<string | null>(null);
  const [token, setToken] = useState('');
  useEffect(() => {
    // The one-time link's code is in the fragment (never sent to a server); it leaves the address bar at once.
    const m = /^#code=([A-Za-z0-9_-]+)$/.exec(location.hash);
    if (!m) return;
    history.replaceState(null, '', '/signin');
    signIn({ code: m[1] }).then(
      () => navigate('/', { replace: true }),
      (e: ApiError) => setError(e.message),
    );
  }, []);
  return (
    <section class="signin">
      <h1>Sign in to dotgit</h1>
      {error && <p class="error" role="alert">{error}</p>}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          signIn({ token }).then(
            () => navigate('/', { replace: true }),
            (err: ApiError) => setError(err.message),
          );
        }}
      >
        <label>
          API token <input type="password" autoComplete="off" value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} required />
        </label>
        <button type="submit">Sign in</button>
      </form>
      <p class="muted">Use an API token (`dotgit token create`), or the one-time link `npm start` prints.</p>
    </section>
  );
}

function Repos() {
  const s = currentSession()!;
  const [repos, setRepos] = useState<Repo[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [owner, setOwner] = useState(s.tenant);
  const [name, setName] = useState('');
  const [visibility, setVisibility] = useState('private');
  const load = () => api.get<{ repos: Repo[] }>('/api/v1/repos?limit=100').then((r) => setRepos(r.repos), (e: ApiError) => setError(e.message));
  useEffect(() => void load(), []);
  return (
    <section>
      <h1>Repositories</h1>
      {error && <p class="error" role="alert">{error}</p>}
      {repos && repos.length === 0 && <p class="muted">No repositories yet.</p>}
      <ul class="list">
        {repos?.map((r) => (
          <li key={`${r.owner}/${r.name}`}>
            <Link href={`/${enc(r.owner)}/${enc(r.name)}`}>{`${r.owner}/${r.name}`}</Link> <span class="muted">{r.visibility}</span>
          </li>
        ))}
      </ul>
      <h2>New repository</h2>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          setError(null);
          api.post<Repo>('/api/v1/repos', { owner, name, visibility }).then(() => {
            setName('');
            void load();
          }, (err: ApiError) => setError(err.message));
        }}
      >
        <label>
          owner <input value={owner} onInput={(e) => setOwner((e.target as HTMLInputElement).value)} required />
        </label>
        <label>
          name <input name="name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} required />
        </label>
        <label>
          visibility{' '}
          <select value={visibility} onChange={(e) => setVisibility((e.target as HTMLSelectElement).value)}>
            <option>private</option>
            <option>public</option>
          </select>
        </label>
        <button type="submit">Create</button>
      </form>
    </section>
  );
}

const STATUSES = ['', 'queued', 'running', 'success', 'failure', 'cancelled'];

function RepoPage({ owner, repo, tab, path = '' }: { owner: string; repo: string; tab?: string; path?: string }) {
  const [info, setInfo] = useState<Repo | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.get<Repo>(`/api/v1/repos/${enc(owner)}/${enc(repo)}`).then(setInfo, (e: ApiError) => setError(e.status === 404 ? 'No such repository (or you may not see it).' : e.message));
  }, [owner, repo]);
  if (error) return <p class="error">{error}</p>;
  return (
    <section>
      <h1>{`${owner}/${repo}`}</h1>
      {info && (
        <p>
          <span class="muted">clone</span> <code class="clone">{info.cloneUrl}</code> <span class="muted">{info.visibility}{info.defaultBranch ? ` · default branch ${info.defaultBranch}` : ''}</span>
        </p>
      )}
      <nav class="tabs" aria-label="repository">
        <Link href={`/${enc(owner)}/${enc(repo)}`} class={!tab ? 'on' : ''}>
          Runs
        </Link>
        <Link href={`/${enc(owner)}/${enc(repo)}/tree`} class={tab === 'tree' || tab === 'blob' ? 'on' : ''}>
          Code
        </Link>
        <Link href={`/${enc(owner)}/${enc(repo)}/commits`} class={tab === 'commits' ? 'on' : ''}>
          Commits
        </Link>
        <Link href={`/${enc(owner)}/${enc(repo)}/branches`} class={tab === 'branches' ? 'on' : ''}>
          Branches
        </Link>
        <Link href={`/${enc(owner)}/${enc(repo)}/deploys`} class={tab === 'deploys' ? 'on' : ''}>
          Deploys
        </Link>
        <Link href={`/${enc(owner)}/${enc(repo)}/settings`} class={tab === 'settings' ? 'on' : ''}>
          Settings
        </Link>
      </nav>
      {tab === 'deploys' && <Deploys owner={owner} repo={repo} />}
      {tab === 'settings' && <RepoSettings owner={owner} repo={repo} />}
      {(tab === 'tree' || tab === 'blob') && <Code owner={owner} repo={repo} path={path} kind={tab} />}
      {tab === 'commits' && <Commits owner={owner} repo={repo} />}
      {tab === 'branches' && <Branches owner={owner} repo={repo} />}
      {!tab && <RunList owner={owner} repo={repo} />}
    </section>
  );
}

/** Runs across the caller's repositories (their tenant's and those granted to them): GET /api/v1/runs. */
function AllRuns() {
  return (
    <section>
      <h1>Runs</h1>
      <RunList />
    </section>
  );
}

/** A repository's runs, or (without one) the recent runs across the caller's repositories. */
function RunList({ owner, repo }: { owner?: string; repo?: string }) {
  const [runs, setRuns] = useState<Run[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const params = new URLSearchParams(location.search);
  const [ref, setRef] = useState(params.get('ref') ?? '');
  const [status, setStatus] = useState(params.get('status') ?? '');
  const [event, setEvent] = useState(params.get('event') ?? '');
  useEffect(() => {
    const q = new URLSearchParams();
    if (ref) q.set('ref', ref.startsWith('refs/') ? ref : `refs/heads/${ref}`);
    if (status) q.set('status', status);
    if (event && !repo) q.set('event', event);
    // Filters live in the URL, so back/forward and shared links keep them.
    const shown = new URLSearchParams({ ...(ref ? { ref } : {}), ...(status ? { status } : {}), ...(event ? { event } : {}) });
    history.replaceState(null, '', `${location.pathname}${shown.size ? `?${shown}` : ''}`);
    const url = owner && repo ? `/api/v1/repos/${enc(owner)}/${enc(repo)}/runs?${q}` : `/api/v1/runs?${q}`;
    const load = () => api.get<{ runs: Run[] }>(url).then((r) => setRuns(r.runs), (e: ApiError) => setError(e.message));
    void load();
    // Runs progress without a reload.
    const t = window.setInterval(() => void load(), 5000);
    return () => clearInterval(t);
  }, [owner, repo, ref, status, event]);
  // The API filters by ref and status; a repository's by event here (the list across repositories does it itself).
  const shownRuns = runs?.filter((r) => !event || r.event === event);
  return (
    <section>
      {error && <p class="error">{error}</p>}
      <form class="inline" onSubmit={(e) => e.preventDefault()}>
        <label>
          branch <input value={ref} placeholder="any" onChange={(e) => setRef((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          status{' '}
          <select value={status} onChange={(e) => setStatus((e.target as HTMLSelectElement).value)}>
            {STATUSES.map((s) => (
              <option value={s} key={s}>
                {s || 'any'}
              </option>
            ))}
          </select>
        </label>
        <label>
          event{' '}
          <select value={event} onChange={(e) => setEvent((e.target as HTMLSelectElement).value)}>
            {['', 'push', 'manual', 'schedule'].map((v) => (
              <option value={v} key={v}>
                {v || 'any'}
              </option>
            ))}
          </select>
        </label>
      </form>
      {shownRuns && shownRuns.length === 0 && <p class="muted">No runs.</p>}
      <table class="runs">
        <tbody>
          {shownRuns?.map((r) => (
            <tr key={r.id}>
              <td>
                <Badge status={r.status} />
              </td>
              {!repo && (
                <td>
                  <Link href={`/${r.repo.split('/').map(enc).join('/')}`}>{r.repo}</Link>
                </td>
              )}
              <td>
                <Link href={`/runs/${enc(r.id)}`}>{r.ref.replace(/^refs\/(heads|tags)\//, '')}</Link>
              </td>
              <td>
                <code>{r.commit.slice(0, 10)}</code>
              </td>
              <td class="muted">{r.event ?? ''}</td>
              <td class="muted">{ago(r.createdAt)}</td>
              <td class="muted">{duration(r.startedAt, r.finishedAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Shell({ session }: { session: Session }) {
  const [, navigate] = useLocation();
  return (
    <>
      <header class="top">
        <Link href="/" class="brand">
          dotgit
        </Link>
        <nav>
          <Link href="/">Repositories</Link> <Link href="/runs">Runs</Link> <Link href="/tokens">Tokens</Link>{' '}
          {(session.platformAdmin || session.role === 'admin') && <Link href="/admin">Admin</Link>}
        </nav>
        <span class="who">
          {session.username} <span class="muted">({session.tenant})</span>{' '}
          <button class="link" onClick={() => void signOut().then(() => navigate('/signin'))}>
            Sign out
          </button>
        </span>
      </header>
      <main>
        <Switch>
          <Route path="/">{() => <Repos />}</Route>
          <Route path="/runs">{() => <AllRuns />}</Route>
          <Route path="/runs/:id">{(p: { id: string }) => <RunPage id={decodeURIComponent(p.id)} />}</Route>
          <Route path="/tokens">{() => <Tokens />}</Route>
          <Route path="/admin">{() => <Admin />}</Route>
          <Route path="/:owner/:repo">{(p: { owner: string; repo: string }) => <RepoPage owner={decodeURIComponent(p.owner)} repo={decodeURIComponent(p.repo)} />}</Route>
          <Route path="/:owner/:repo/:tab/*">
            {(p: { owner: string; repo: string; tab: string; '*': string }) =>
              p.tab === 'tree' || p.tab === 'blob' ? (
                <RepoPage owner={decodeURIComponent(p.owner)} repo={decodeURIComponent(p.repo)} tab={p.tab} path={p['*'].split('/').map(decodeURIComponent).join('/')} />
              ) : (
                <p>Page not found.</p>
              )
            }
          </Route>
          <Route path="/:owner/:repo/:tab">
            {(p: { owner: string; repo: string; tab: string }) => <RepoPage owner={decodeURIComponent(p.owner)} repo={decodeURIComponent(p.repo)} tab={p.tab} />}
          </Route>
          <Route>
            <p>Page not found.</p>
          </Route>
        </Switch>
      </main>
    </>
  );
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [location, navigate] = useLocation();
  useEffect(() => {
    const off = onSession(setSession);
    void loadSession();
    return off;
  }, []);
  useEffect(() => {
    if (session === null && location !== '/signin') navigate('/signin', { replace: true });
  }, [session, location]);
  if (session === undefined) return <p class="muted">loading…</p>;
  if (location === '/signin' || !session) return <SignIn />;
  return <Shell session={session} />;
}

render(<App />, document.getElementById('app')!);
