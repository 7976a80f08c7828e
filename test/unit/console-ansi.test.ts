import { ansiSegments, plainText } from '../../console/src/ansi';

// The console's log renderer (issue 18): ANSI SGR sequences become styled segments of plain text.

test('plain text is one unstyled segment; an empty line is none', () => {
  expect(ansiSegments('hello world')).toEqual([{ text: 'hello world', classes: [] }]);
  expect(ansiSegments('')).toEqual([]);
});

test('basic colours, bright colours, backgrounds and decorations become classes', () => {
  expect(ansiSegments('\u001b[31mred\u001b[0m plain')).toEqual([
    { text: 'red', classes: ['ansi-red-fg'] },
    { text: ' plain', classes: [] },
  ]);
  expect(ansiSegments('\u001b[1;92;44mbold\u001b[0m')).toEqual([{ text: 'bold', classes: ['ansi-bright-green-fg', 'ansi-blue-bg', 'ansi-bold'] }]);
});

test('256-colour palette and truecolour become rgb values; palette 0-15 stay classes', () => {
  expect(ansiSegments('\u001b[38;5;196mx')).toEqual([{ text: 'x', classes: [], color: 'rgb(255, 0, 0)' }]);
  expect(ansiSegments('\u001b[38;5;1mx')).toEqual([{ text: 'x', classes: ['ansi-red-fg'] }]);
  expect(ansiSegments('\u001b[38;5;244mx')).toEqual([{ text: 'x', classes: [], color: 'rgb(128, 128, 128)' }]);
  expect(ansiSegments('\u001b[48;2;10;20;30my')).toEqual([{ text: 'y', classes: [], background: 'rgb(10, 20, 30)' }]);
});

test('markup stays text; other escape sequences are dropped, never shown as garbage', () => {
  expect(ansiSegments('<img src=x onerror=alert(1)>')).toEqual([{ text: '<img src=x onerror=alert(1)>', classes: [] }]);
  expect(plainText('\u001b[2K\u001b[1Gprogress\u001b]0;title\u0007 done\u001b')).toBe('progress done');
  expect(plainText('\u001b[32m<b>ok</b>\u001b[0m')).toBe('<b>ok</b>');
});
