import type { ComponentChildren } from 'preact';
import { useLayoutEffect, useRef, useState } from 'preact/hooks';

export interface GraphJob {
  name: string;
  needs: string[];
}

interface Edge {
  from: string;
  to: string;
  d: string;
}

/** Each job's column: 0 without needs, else one past the furthest job it needs (a cycle, which the API never sends, stops at 0). */
function stages(jobs: GraphJob[]): GraphJob[][] {
  const byName = new Map(jobs.map((j) => [j.name, j]));
  const depth = new Map<string, number>();
  const of = (j: GraphJob, seen: Set<string>): number => {
    const known = depth.get(j.name);
    if (known !== undefined) return known;
    if (seen.has(j.name)) return 0;
    seen.add(j.name);
    const d = Math.max(-1, ...j.needs.map((n) => byName.get(n)).filter((n): n is GraphJob => !!n).map((n) => of(n, seen))) + 1;
    depth.set(j.name, d);
    return d;
  };
  const columns: GraphJob[][] = [];
  for (const j of jobs) (columns[of(j, new Set())] ??= []).push(j);
  return columns.filter(Boolean);
}

/**
 * The run's jobs as a graph: a column per stage (what a job needs is to its left), and an edge from
 * each needed job to the job needing it, drawn as SVG paths over the measured boxes (attributes, not
 * inline styles: the CSP allows no style attribute). On a phone the columns stack and the edges run
 * top to bottom. Each box also says in words what it needs, for readers that do not see the lines.
 */
export function JobGraph({ jobs, card }: { jobs: GraphJob[]; card: (job: GraphJob) => ComponentChildren }) {
  const box = useRef<HTMLDivElement>(null);
  const latest = useRef(jobs);
  latest.current = jobs;
  const [edges, setEdges] = useState<{ w: number; h: number; list: Edge[] }>({ w: 0, h: 0, list: [] });
  const measure = () => {
    const root = box.current;
    if (!root) return;
    const at = new Map<string, { x: number; y: number; w: number; h: number }>();
    root.querySelectorAll<HTMLElement>('[data-job]').forEach((el) => at.set(el.dataset.job!, { x: el.offsetLeft, y: el.offsetTop, w: el.offsetWidth, h: el.offsetHeight }));
    const list: Edge[] = [];
    for (const j of latest.current) {
      const b = at.get(j.name);
      for (const n of j.needs) {
        const a = at.get(n);
        if (!a || !b) continue;
        // Side by side: right edge to left edge; stacked (narrow screens): bottom to top.
        const d =
          b.x >= a.x + a.w
            ? `M${a.x + a.w} ${a.y + a.h / 2} C${a.x + a.w + 20} ${a.y + a.h / 2} ${b.x - 20} ${b.y + b.h / 2} ${b.x} ${b.y + b.h / 2}`
            : `M${a.x + 12} ${a.y + a.h} C${a.x + 12} ${a.y + a.h + 12} ${b.x + 12} ${b.y - 12} ${b.x + 12} ${b.y}`;
        list.push({ from: n, to: j.name, d });
      }
    }
    const next = { w: root.scrollWidth, h: root.scrollHeight, list };
    // Re-rendered every second (running durations): only a change redraws.
    setEdges((old) => (JSON.stringify(old) === JSON.stringify(next) ? old : next));
  };
  useLayoutEffect(measure);
  useLayoutEffect(() => {
    const observer = new ResizeObserver(() => measure());
    if (box.current) observer.observe(box.current);
    return () => observer.disconnect();
  }, []);
  return (
    <div class="graph" ref={box} aria-label="jobs">
      <svg class="edges" width={edges.w} height={edges.h} aria-hidden="true">
        {edges.list.map((e) => (
          <path class="edge" key={`${e.from}\u0000${e.to}`} data-from={e.from} data-to={e.to} d={e.d} />
        ))}
      </svg>
      {stages(jobs).map((column, i) => (
        <div class="stage" key={i}>
          {column.map((j) => (
            <div class="job-node" data-job={j.name} key={j.name}>
              {card(j)}
            </div>
          ))}
        </div>
      ))}
    </div>
  );
}
