import { useEffect, useRef, useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { api, ApiError, currentSession, enc, type Run, type Step } from './api';
import { duration } from './format';
import { LogView, type LogLine } from './log-view';
import { JobGraph } from './job-graph';

const TERMINAL = new Set(['success', 'failure', 'cancelled']);

/** A job's status from its steps: failed or cancelled wins, then running, then queued, else success. */
function jobStatus(steps: Step[]): string {
  const has = (s: string) => steps.some((x) => x.status === s);
  if (has('failure')) return 'failure';
  if (has('cancelled')) return 'cancelled';
  if (has('running')) return 'running';
  if (steps.every((x) => x.status === 'skipped')) return 'skipped';
  if (has('queued')) return steps.some((x) => x.status === 'success') ? 'running' : 'queued';
  return 'success';
}

function jobsOf(run: Run): Array<{ job: string; steps: Step[] }> {
  const byJob = new Map<string, Step[]>();
  for (const s of run.steps) byJob.set(s.job, [...(byJob.get(s.job) ?? []), s]);
  return [...byJob].map(([job, steps]) => ({ job, steps }));
}

function span(steps: Step[]): { startedAt: string | null; finishedAt: string | null } {
  const starts = steps.map((s) => s.startedAt).filter((x): x is string => !!x).sort();
  const ends = steps.map((s) => s.finishedAt).filter((x): x is string => !!x).sort();
  const done = steps.every((s) => s.finishedAt || s.status === 'skipped');
  return { startedAt: starts[0] ?? null, finishedAt: done ? (ends[ends.length - 1] ?? null) : null };
}

export const Badge = ({ status }: { status: string }) => <span class={`badge s-${status}`}>{status}</span>;

/**
 * The run page: jobs and their steps with statuses and durations, kept current by the run's event
 * stream, and the log from line 1 (the stream replays from its start, then follows live).
 */
export function RunPage({ id }: { id: string }) {
  const [run, setRun] = useState<Run | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [version, setVersion] = useState(0);
  const [filter, setFilter] = useState<string>('');
  const [artifacts, setArtifacts] = useState<Array<{ job: string; path: string; size: number }>>([]);
  const [, tick] = useState(0);
  const lines = useRef<LogLine[]>([]);
  // A re-run starts the run's next attempt under the same id: the page starts over and follows it.
  const [attempt, setAttempt] = useState(0);

  const refresh = () =>
    api.get<Run>(`/api/v1/runs/${enc(id)}`).then(
      (r) => {
        setRun(r);
        if (TERMINAL.has(r.status)) api.get<{ artifacts: typeof artifacts }>(`/api/v1/runs/${enc(id)}/artifacts`).then((a) => setArtifacts(a.artifacts), () => undefined);
        return r;
      },
      (e: ApiError) => {
        setError(e.status === 404 ? 'No such run (or you may not see it).' : e.message);
        return null;
      },
    );

  useEffect(() => {
    lines.current = [];
    let closed = false;
    let pending = 0;
    let refreshTimer: number | undefined;
    // Lines arrive in bursts; the view redraws once per frame, not once per line.
    const flush = () => {
      pending = 0;
      setVersion((v) => v + 1);
    };
    const later = () => {
      clearTimeout(refreshTimer);
      refreshTimer = window.setTimeout(() => void refresh(), 250);
    };
    let es: EventSource | undefined;
    // A finished run's logs come whole from the object store (the live stream keeps ~100,000 entries
    // and expires); a live one's from its event stream, which replays from its start, then follows.
    void refresh().then((r) => {
      if (closed || !r) return;
      if (TERMINAL.has(r.status) && attempt === 0) void loadStoredLogs(r);
      else follow();
    });
    const follow = () => {
      const source = (es = new EventSource(`/api/v1/runs/${enc(id)}/events`));
      source.addEventListener('log', (e) => {
        const d = JSON.parse((e as MessageEvent).data) as { job: string; step: string; line: string };
        lines.current.push({ job: d.job, step: d.step, text: d.line });
        if (!pending) pending = requestAnimationFrame(flush);
      });
      source.addEventListener('step', later);
      // A job started or stopped waiting (ADR 0044): its pending reason is redrawn from the run's answer.
      source.addEventListener('pending', later);
      source.addEventListener('status', (e) => {
        const d = JSON.parse((e as MessageEvent).data) as { status: string };
        later();
        if (TERMINAL.has(d.status)) {
          // The stream ends after the terminal status; without this EventSource would reconnect.
          source.close();
        }
      });
      source.onerror = () => {
        if (!closed && source.readyState === EventSource.CLOSED) setNote('live updates stopped; reload to resume');
      };
    };
    const loadStoredLogs = async (r: Run) => {
      // Fetched together, appended in step order.
      const texts = await Promise.all(
        r.steps.map((s) => (s.startedAt ? fetch(`/api/v1/runs/${enc(id)}/logs?job=${enc(s.job)}&step=${enc(s.name)}`).then((res) => (res.ok ? res.text() : ''), () => '') : Promise.resolve(''))),
      );
      if (closed) return;
      r.steps.forEach((s, i) => {
        const all = texts[i].split('\n');
        if (all[all.length - 1] === '') all.pop();
        for (const text of all) lines.current.push({ job: s.job, step: s.name, text });
      });
      flush();
    };
    // Running durations count up.
    const clock = window.setInterval(() => tick((n) => n + 1), 1000);
    return () => {
      es?.close();
      closed = true;
      clearInterval(clock);
      clearTimeout(refreshTimer);
      if (pending) cancelAnimationFrame(pending);
    };
  }, [id, attempt]);

  if (error) return <p class="error">{error}</p>;
  if (!run) return <p class="muted">loading…</p>;
  const [owner, repo] = run.repo.split('/');
  const shownLines = filter ? lines.current.filter((l) => `${l.job}\u0000${l.step}` === filter) : lines.current;
  const act = (path: string, body: unknown = {}) =>
    api.post(`/api/v1/runs/${enc(id)}/${path}`, body).then(
      () => {
        setNote(`${path} requested`);
        if (path === 'rerun') setAttempt((n) => n + 1);
        else void refresh();
      },
      (e: ApiError) => setNote(e.status === 404 ? `${path} is not available on this platform` : e.message),
    );
  const running = !TERMINAL.has(run.status);

  return (
    <section class="run">
      <header class="run-head">
        <h1>
          <Link href={`/${enc(owner)}/${enc(repo)}`}>{run.repo}</Link> <span class="muted">run</span> <Badge status={run.status} />
        </h1>
        <p class="muted">
          {run.ref} · <code>{run.commit.slice(0, 12)}</code> · {run.event ?? 'push'}
          {run.attempt && run.attempt > 1 ? ` · attempt ${run.attempt}` : ''} · {duration(run.startedAt, run.finishedAt)} · workflow id <code>{run.id}</code>
        </p>
        {run.message && <p class="run-message">{run.message}</p>}
        {run.pending && run.pending.message !== run.message && <p class="run-message pending">{run.pending.message}</p>}
        <div class="actions">
          {running && (
            <button class="danger" onClick={() => void act('cancel')}>
              Cancel
            </button>
          )}
          {!running && <button onClick={() => void act('rerun')}>Re-run all</button>}
          {!running && run.status === 'failure' && <button onClick={() => void act('rerun', { failedOnly: true })}>Re-run failed</button>}
          <a class="button" href={`/api/v1/runs/${enc(id)}`} download>
            JSON
          </a>
          {currentSession()?.temporalUiUrl && (
            <a class="button" href={`${currentSession()!.temporalUiUrl}?query=${enc(`WorkflowId="${run.id}"`)}`} target="_blank" rel="noopener noreferrer">
              Temporal workflow
            </a>
          )}
        </div>
        {note && <p class="note" role="status">{note}</p>}
      </header>
      <JobGraph
        jobs={run.jobs ?? jobsOf(run).map(({ job }) => ({ name: job, needs: [] }))}
        card={({ name, needs }) => {
          const steps = run.steps.filter((s) => s.job === name);
          const t = span(steps);
          return (
            <div class={`job s-${jobStatus(steps)}`}>
              <div class="job-head">
                <button class="link" onClick={() => setFilter('')} title="all steps">
                  {name}
                </button>
                <Badge status={jobStatus(steps)} /> <span class="muted">{duration(t.startedAt, t.finishedAt)}</span>
              </div>
              {needs.length > 0 && <div class="needs muted">needs {needs.join(', ')}</div>}
              {steps.find((s) => s.pending)?.pending && <div class="needs pending">{steps.find((s) => s.pending)!.pending!.message}</div>}
              <ol class="steps">
                {steps.map((s) => {
                  const key = `${s.job}\u0000${s.name}`;
                  return (
                    <li key={s.name} class={filter === key ? 'selected' : undefined}>
                      <button class="link" onClick={() => setFilter(filter === key ? '' : key)}>
                        {s.name}
                      </button>{' '}
                      <Badge status={s.status} /> <span class="muted">{duration(s.startedAt, s.finishedAt)}</span>
                      {s.exitCode !== null && s.exitCode !== 0 && <span class="muted"> exit {s.exitCode}</span>}
                      {s.startedAt && (
                        <a class="raw" href={`/api/v1/runs/${enc(id)}/logs?job=${enc(s.job)}&step=${enc(s.name)}`} download={`${s.job}-${s.name}.log`}>
                          raw
                        </a>
                      )}
                    </li>
                  );
                })}
              </ol>
            </div>
          );
        }}
      />
      {artifacts.length > 0 && (
        <div class="artifacts">
          <h2>Artifacts</h2>
          <ul>
            {artifacts.map((a) => (
              <li key={`${a.job}/${a.path}`}>
                <a href={`/api/v1/runs/${enc(id)}/artifacts/${a.path.split('/').map(enc).join('/')}?job=${enc(a.job)}`} download>
                  {a.path}
                </a>{' '}
                <span class="muted">
                  {a.job} · {a.size.toLocaleString()} bytes
                </span>
              </li>
            ))}
          </ul>
        </div>
      )}
      <LogView lines={shownLines} version={version + filter.length} prefix={!filter} />
    </section>
  );
}
