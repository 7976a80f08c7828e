/** One scrape of a Prometheus text endpoint: the samples, summed over series that match the labels. */
export interface Scrape {
  text: string;
  /** The sum of `name`'s samples whose labels include every given one; undefined when none match. */
  sum(name: string, labels?: Record<string, string>): number | undefined;
  /** Every metric family name present. */
  names(): Set<string>;
}

export async function scrape(url: string): Promise<Scrape> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`${url} answered ${res.status}`);
  return parseProm(await res.text());
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseProm(text: string): Scrape {
  const samples: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? '').matchAll(LABEL)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return {
    text,
    sum(name, want = {}) {
      const hits = samples.filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v));
      return hits.length ? hits.reduce((a, s) => a + s.value, 0) : undefined;
    },
    names: () => new Set(samples.map((s) => s.name)),
  };
}

/** PromQL words that are not metric names: functions, aggregations, operators, modifiers. */
const PROMQL_WORDS = new Set([
  'sum', 'min', 'max', 'avg', 'count', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values', 'group',
  'rate', 'irate', 'increase', 'delta', 'idelta', 'deriv', 'histogram_quantile', 'clamp_min', 'clamp_max', 'clamp', 'abs', 'time',
  'vector', 'scalar', 'absent', 'absent_over_time', 'avg_over_time', 'max_over_time', 'min_over_time', 'sum_over_time', 'label_replace',
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset',
  // Number literals (`> 3600 < +Inf`).
  'Inf', 'NaN',
]);

/** The metric names a PromQL expression reads (label matchers, grouping labels, strings and durations left out). */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/(?<![a-zA-Z_:])\d+(\.\d+)?(e[+-]?\d+)?/gi, ' ');
  return [...new Set((stripped.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? []).filter((w) => !PROMQL_WORDS.has(w) && !/^\d/.test(w)))];
}

/** Every sample name a scrape can answer: each `# TYPE` family, with a histogram's `_bucket`, `_count`, `_sum`. */
export function exportedNames(s: Scrape): Set<string> {
  const names = new Set<string>();
  for (const m of s.text.matchAll(/^# TYPE (\S+) (\S+)/gm)) {
    names.add(m[1]);
    if (m[2] === 'histogram' || m[2] === 'summary') for (const suffix of ['_bucket', '_count', '_sum']) names.add(m[1] + suffix);
  }
  for (const n of s.names()) names.add(n);
  return names;
}
