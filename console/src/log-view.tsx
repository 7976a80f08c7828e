import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { ansiSegments, plainText } from './ansi';

export interface LogLine {
  job: string;
  step: string;
  text: string;
}

/** Every line is this tall (CSS `.log-line` agrees), which is what makes windowing exact and cheap. */
const LINE_HEIGHT = 18;
/** Lines drawn above and below the visible window, so fast scrolling shows no gaps. */
const OVERSCAN = 30;

function Line({ line, n, prefix, active }: { line: LogLine; n: number; prefix: boolean; active: boolean }) {
  return (
    <div class={active ? 'log-line active' : 'log-line'} id={`L${n}`} style={{ top: `${(n - 1) * LINE_HEIGHT}px` }}>
      <a class="log-n" href={`#L${n}`}>
        {n}
      </a>
      {prefix && <span class="log-step">{`${line.job} › ${line.step}`}</span>}
      <span class="log-text">
        {ansiSegments(line.text).map((s, i) => (
          <span key={i} class={s.classes.join(' ') || undefined} style={s.color || s.background ? { color: s.color, backgroundColor: s.background } : undefined}>
            {s.text}
          </span>
        ))}
      </span>
    </div>
  );
}

/**
 * A windowed log: only the lines in view (plus a margin) are in the DOM, positioned inside a box as
 * tall as all of them, so 100,000 lines scroll as smoothly as 100. Hand-written rather than a
 * virtual-list library: with one fixed line height it is a division, and it stays a few hundred
 * bytes of the page's JavaScript. Text goes in as text nodes only (ANSI → styled spans).
 */
export function LogView({ lines, version, prefix }: { lines: LogLine[]; version: number; prefix: boolean }) {
  const box = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(600);
  const [follow, setFollow] = useState(true);
  const [query, setQuery] = useState('');
  const [hit, setHit] = useState<number | null>(null);
  const [anchor, setAnchor] = useState<number | null>(() => lineFromHash());

  // Follow: stay at the end as lines arrive.
  useLayoutEffect(() => {
    const el = box.current;
    if (el && follow && anchor === null) el.scrollTop = el.scrollHeight;
  }, [version, follow, anchor]);

  // A #L123 anchor scrolls to its line once that line exists.
  useLayoutEffect(() => {
    const el = box.current;
    if (el && anchor !== null && anchor <= lines.length) el.scrollTop = Math.max(0, (anchor - 5) * LINE_HEIGHT);
  }, [anchor, version >= (anchor ?? 0)]);

  useEffect(() => {
    const onHash = () => setAnchor(lineFromHash());
    window.addEventListener('hashchange', onHash);
    const el = box.current;
    const ro = el ? new ResizeObserver(() => setHeight(el.clientHeight)) : undefined;
    if (el) ro?.observe(el);
    return () => {
      window.removeEventListener('hashchange', onHash);
      ro?.disconnect();
    };
  }, []);

  const onScroll = () => {
    const el = box.current!;
    setTop(el.scrollTop);
    // Scrolling up stops following; back at the end, it follows again.
    const atEnd = el.scrollTop + el.clientHeight >= el.scrollHeight - LINE_HEIGHT;
    if (atEnd !== follow) setFollow(atEnd);
  };

  const find = (from: number, dir: 1 | -1) => {
    if (!query) return;
    const q = query.toLowerCase();
    for (let k = 1; k <= lines.length; k++) {
      const i = (((from - 1 + dir * k) % lines.length) + lines.length) % lines.length;
      if (plainText(lines[i].text).toLowerCase().includes(q)) {
        setHit(i + 1);
        setFollow(false);
        box.current!.scrollTop = Math.max(0, (i + 1 - 5) * LINE_HEIGHT);
        return;
      }
    }
    setHit(null);
  };

  const first = Math.max(0, Math.floor(top / LINE_HEIGHT) - OVERSCAN);
  const last = Math.min(lines.length, Math.ceil((top + height) / LINE_HEIGHT) + OVERSCAN);
  const shown = [];
  for (let i = first; i < last; i++) shown.push(<Line key={i} line={lines[i]} n={i + 1} prefix={prefix} active={i + 1 === hit || i + 1 === anchor} />);

  return (
    <div class="log">
      <div class="log-bar">
        <label>
          <input type="checkbox" checked={follow} onChange={(e) => setFollow((e.target as HTMLInputElement).checked)} /> follow
        </label>
        <form
          class="log-search"
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            find(hit ?? 0, 1);
          }}
        >
          <input type="search" placeholder="search the log" aria-label="search the log" value={query} onInput={(e) => setQuery((e.target as HTMLInputElement).value)} />
          <button type="button" onClick={() => find(hit ?? 1, -1)} aria-label="previous match">
            ↑
          </button>
          <button type="submit" aria-label="next match">
            ↓
          </button>
        </form>
        <span class="muted">{lines.length.toLocaleString()} lines</span>
      </div>
      <div class="log-box" ref={box} onScroll={onScroll} tabIndex={0} aria-label="log">
        <div class="log-inner" style={{ height: `${lines.length * LINE_HEIGHT}px` }}>
          {shown}
        </div>
      </div>
    </div>
  );
}

function lineFromHash(): number | null {
  const m = /^#L(\d+)$/.exec(location.hash);
  return m ? Number(m[1]) : null;
}
