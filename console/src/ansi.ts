import Anser from 'anser';

/** One run of text with its SGR styling, as classes (`ansi-red`, `ansi-bold`) and truecolour values. */
export interface Segment {
  text: string;
  classes: string[];
  color?: string;
  background?: string;
}

/**
 * A log line's ANSI escape sequences turned into styled segments of plain text. The console renders
 * each segment as a text node inside a span (never as HTML), so a line holding markup shows as the
 * characters it is. Sequences other than SGR (cursor moves, OSC) are dropped.
 */
export function ansiSegments(line: string): Segment[] {
  // Cheap path for the common case: no escape character at all.
  if (!line.includes('\u001b')) return line ? [{ text: line, classes: [] }] : [];
  const out: Segment[] = [];
  for (const e of Anser.ansiToJson(line, { use_classes: true, remove_empty: true })) {
    // Whatever escape sequences anser left unparsed are not shown as garbage.
    const text = e.content.replace(/\u001b\[[0-9;?]*[A-Za-z]|\u001b\][^\u0007]*\u0007|\u001b/g, '');
    if (!text) continue;
    const classes: string[] = [];
    const seg: Segment = { text, classes };
    const fg = colour(e.fg, e.fg_truecolor);
    const bg = colour(e.bg, e.bg_truecolor);
    if (fg.cls) classes.push(`${fg.cls}-fg`);
    if (bg.cls) classes.push(`${bg.cls}-bg`);
    if (fg.rgb) seg.color = fg.rgb;
    if (bg.rgb) seg.background = bg.rgb;
    for (const d of e.decorations ?? []) classes.push(`ansi-${d}`);
    out.push(seg);
  }
  return out;
}

/** The line without its escape sequences: what search matches against and raw copies hold. */
export function plainText(line: string): string {
  return ansiSegments(line).map((s) => s.text).join('');
}

const BASIC = ['black', 'red', 'green', 'yellow', 'blue', 'magenta', 'cyan', 'white'];
const CUBE = [0, 95, 135, 175, 215, 255];

/**
 * A colour as anser names it: the 16 basic ones stay classes (the theme decides their shades); the
 * 256-colour palette and truecolour become rgb() values.
 */
function colour(name: string | null | undefined, truecolor: string | null | undefined): { cls?: string; rgb?: string } {
  if (!name) return {};
  if (truecolor) return { rgb: `rgb(${truecolor})` };
  const m = /^ansi-palette-(\d+)$/.exec(name);
  if (!m) return { cls: name };
  const n = Number(m[1]);
  if (n < 8) return { cls: `ansi-${BASIC[n]}` };
  if (n < 16) return { cls: `ansi-bright-${BASIC[n - 8]}` };
  if (n < 232) {
    const i = n - 16;
    return { rgb: `rgb(${CUBE[Math.floor(i / 36)]}, ${CUBE[Math.floor(i / 6) % 6]}, ${CUBE[i % 6]})` };
  }
  const g = 8 + (n - 232) * 10;
  return { rgb: `rgb(${g}, ${g}, ${g})` };
}
