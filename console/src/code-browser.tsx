import { useEffect, useState } from 'preact/hooks';
import { Link, useSearch } from 'wouter-preact';
import { api, ApiError, enc } from './api';
import { ago } from './format';
import { Badge } from './run-page';

/**
 * The repository browser (issue 18, ADR 0034): branches and tags, a ref's commits with their runs,
 * a tree at any ref with breadcrumbs, a file's text and its raw download. The ref rides in the
 * URL's query (`?ref=release/1.x`), as in the API: refs hold slashes, paths too.
 */

interface RefItem {
  name: string;
  commit: string;
  committedAt: string | null;
  default?: boolean;
}
interface Entry {
  name: string;
  path: string;
  type: 'tree' | 'blob' | 'symlink' | 'submodule';
  size: number | null;
}
interface Tree {
  ref: string;
  commit: string;
  path: string;
  type: Entry['type'];
  size: number | null;
  entries: Entry[] | null;
  truncated: boolean;
}
interface Commit {
  sha: string;
  subject: string;
  author: { name: string; date: string };
  run: { id: string; status: string } | null;
}

/** Longest text shown in the file view; the raw download has the rest. */
const SHOWN_BYTES = 1024 * 1024;

const repoBase = (owner: string, repo: string) => `/api/v1/repos/${enc(owner)}/${enc(repo)}`;
/** A path in a URL, its slashes kept. */
const pathUrl = (path: string) => path.split('/').map(enc).join('/');
const withRef = (ref: string | null) => (ref ? `?ref=${enc(ref)}` : '');
const shortRef = (ref: string) => ref.replace(/^refs\/(heads|tags)\//, '');

/** Loads `url`, and again every `everyMs` when given (run statuses progress without a reload). */
function useLoad<T>(url: string, everyMs = 0): { data: T | null; error: string | null } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let gone = false;
    setData(null);
    setError(null);
    const load = () => api.get<T>(url).then((d) => !gone && (setData(d), setError(null)), (e: ApiError) => !gone && setError(e.message));
    void load();
    const t = everyMs ? window.setInterval(() => void load(), everyMs) : undefined;
    return () => {
      gone = true;
      clearInterval(t);
    };
  }, [url]);
  return { data, error };
}

const useRefParam = () => new URLSearchParams(useSearch()).get('ref');

/** Branches and tags, each linking to its tree and its commits. */
export function Branches({ owner, repo }: { owner: string; repo: string }) {
  const branches = useLoad<{ branches: RefItem[]; truncated: boolean }>(`${repoBase(owner, repo)}/branches`);
  const tags = useLoad<{ tags: RefItem[]; truncated: boolean }>(`${repoBase(owner, repo)}/tags`);
  const list = (items: RefItem[] | undefined) => (
    <ul class="list">
      {items?.map((b) => (
        <li key={b.name}>
          <Link href={`/${enc(owner)}/${enc(repo)}/tree${withRef(b.name)}`}>{b.name}</Link> {b.default && <span class="badge">default</span>} <code>{b.commit.slice(0, 10)}</code>{' '}
          <span class="muted">{ago(b.committedAt)}</span> <Link href={`/${enc(owner)}/${enc(repo)}/commits${withRef(b.name)}`}>commits</Link>
        </li>
      ))}
      {items?.length === 0 && <li class="muted">none</li>}
    </ul>
  );
  return (
    <section>
      <h2>Branches</h2>
      {branches.error && <p class="error">{branches.error}</p>}
      {list(branches.data?.branches)}
      {branches.data?.truncated && <p class="muted">Only the first 1000 are shown.</p>}
      <h2>Tags</h2>
      {tags.error && <p class="error">{tags.error}</p>}
      {list(tags.data?.tags)}
    </section>
  );
}

/** A ref's commits, newest first, each with its latest run (linking to the run page). */
export function Commits({ owner, repo }: { owner: string; repo: string }) {
  const ref = useRefParam();
  const { data, error } = useLoad<{ ref: string; commits: Commit[] }>(`${repoBase(owner, repo)}/commits?limit=50${ref ? `&ref=${enc(ref)}` : ''}`, 5000);
  return (
    <section>
      {error && <p class="error">{error}</p>}
      {data && <p class="muted">Commits of {shortRef(data.ref)}</p>}
      <table class="runs commits">
        <tbody>
          {data?.commits.map((c) => (
            <tr key={c.sha}>
              <td>{c.run ? <Link href={`/runs/${enc(c.run.id)}`} aria-label={`run ${c.run.status}`}><Badge status={c.run.status} /></Link> : <span class="muted">no run</span>}</td>
              <td>{c.subject}</td>
              <td>
                <Link href={`/${enc(owner)}/${enc(repo)}/tree${withRef(c.sha)}`}>
                  <code>{c.sha.slice(0, 10)}</code>
                </Link>
              </td>
              <td class="muted">{c.author.name}</td>
              <td class="muted">{ago(c.author.date)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && data.commits.length === 0 && <p class="muted">No commits.</p>}
    </section>
  );
}

/** `owner/repo / src / lib`: each part links to its directory at the same ref. */
function Crumbs({ owner, repo, path, ref }: { owner: string; repo: string; path: string; ref: string | null }) {
  const parts = path ? path.split('/') : [];
  return (
    <nav class="crumbs" aria-label="path">
      <Link href={`/${enc(owner)}/${enc(repo)}/tree${withRef(ref)}`}>{repo}</Link>
      {parts.map((p, i) => (
        <span key={i}>
          {' / '}
          {i === parts.length - 1 ? <strong>{p}</strong> : <Link href={`/${enc(owner)}/${enc(repo)}/tree/${pathUrl(parts.slice(0, i + 1).join('/'))}${withRef(ref)}`}>{p}</Link>}
        </span>
      ))}
    </nav>
  );
}

/** A directory at a ref (`kind` tree) or a file's text (`kind` blob), with breadcrumbs and the ref shown. */
export function Code({ owner, repo, path, kind }: { owner: string; repo: string; path: string; kind: 'tree' | 'blob' }) {
  const ref = useRefParam();
  const { data, error } = useLoad<Tree>(`${repoBase(owner, repo)}/tree${path ? `/${pathUrl(path)}` : ''}${withRef(ref)}`);
  const raw = `${repoBase(owner, repo)}/raw/${pathUrl(path)}${withRef(ref ?? data?.commit ?? null)}`;
  return (
    <section>
      {data && (
        <p class="muted">
          at <strong>{ref ?? shortRef(data.ref)}</strong> <code>{data.commit.slice(0, 10)}</code>
        </p>
      )}
      <Crumbs owner={owner} repo={repo} path={path} ref={ref} />
      {error && <p class="error">{error.includes('has no default branch') || /ref .* not found/.test(error) ? `${error} (an empty repository has no files yet)` : error}</p>}
      {data?.entries && (
        <table class="runs tree">
          <tbody>
            {data.entries.map((e) => (
              <tr key={e.path}>
                <td class="muted">{e.type === 'tree' ? 'dir' : e.type === 'blob' ? 'file' : e.type}</td>
                <td>
                  {e.type === 'submodule' ? (
                    e.name
                  ) : (
                    <Link href={`/${enc(owner)}/${enc(repo)}/${e.type === 'tree' ? 'tree' : 'blob'}/${pathUrl(e.path)}${withRef(ref)}`}>{e.type === 'tree' ? `${e.name}/` : e.name}</Link>
                  )}
                </td>
                <td class="muted">{e.size === null ? '' : `${e.size.toLocaleString('en-US')} B`}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {data?.truncated && <p class="muted">Only the first 5000 entries are shown.</p>}
      {data && !data.entries && kind === 'blob' && <FileView url={raw} size={data.size ?? 0} />}
      {data && !data.entries && kind === 'tree' && (
        <p>
          A file: <Link href={`/${enc(owner)}/${enc(repo)}/blob/${pathUrl(path)}${withRef(ref)}`}>view it</Link>
        </p>
      )}
    </section>
  );
}

/** A file's text with line numbers (as text nodes, never markup), or a note for binary files; raw download either way. */
function FileView({ url, size }: { url: string; size: number }) {
  const [text, setText] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  useEffect(() => {
    if (size > SHOWN_BYTES) {
      setNote(`${size.toLocaleString('en-US')} bytes: too large to show here`);
      return;
    }
    fetch(url, { credentials: 'same-origin' })
      .then(async (res) => {
        if (!res.ok) throw new Error(`${res.status}`);
        const bytes = new Uint8Array(await res.arrayBuffer());
        if (bytes.subarray(0, 8000).includes(0)) setNote(`binary file, ${bytes.length.toLocaleString('en-US')} bytes`);
        else setText(new TextDecoder().decode(bytes));
      })
      .catch((e: Error) => setNote(`could not load the file (${e.message})`));
  }, [url, size]);
  const lines = text === null ? [] : text.replace(/\n$/, '').split('\n');
  return (
    <div class="file">
      <div class="log-bar">
        <span class="muted">
          {size.toLocaleString('en-US')} bytes{text !== null ? `, ${lines.length} lines` : ''}
        </span>
        <a href={url} download>
          Raw
        </a>
      </div>
      {note && <p class="muted">{note}</p>}
      {text !== null && (
        <pre class="file-text" aria-label="file">
          {lines.map((l, i) => (
            <div key={i} id={`L${i + 1}`} class="file-line">
              <span class="log-n">{i + 1}</span>
              {l}
            </div>
          ))}
        </pre>
      )}
    </div>
  );
}
