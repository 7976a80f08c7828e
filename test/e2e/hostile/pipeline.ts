import type { PipelineCase } from './types';

// Hostile `.dotgit/pipeline.yml` files, pushed with the real git client. CONTRACT: an invalid file
// fails the run with a message that names the line and the problem
// (`.dotgit/pipeline.yml:<line>:<column>: <problem>`).

const at = (line: number | string, problem: string) => new RegExp(`\\.dotgit/pipeline\\.yml:${line}:\\d+: .*${problem}`, 'i');
const ANY = '\\d+';
const ok = () => 'jobs:\n  build:\n    steps:\n      - name: s\n        run: echo ok\n';

function aliasBomb(): string {
  const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
  const letters = 'abcdefghi';
  for (let i = 1; i < letters.length; i++) {
    const prev = letters[i - 1];
    lines.push(`${letters[i]}: &${letters[i]} [${Array(9).fill(`*${prev}`).join(',')}]`);
  }
  return `${lines.join('\n')}\n${ok()}`;
}

const JOB = 'jobs:\n  build:\n';
/** A file of one job with one step of these fields (the step's first field is on line 4). */
const step = (...fields: string[]) => `${JOB}    steps:\n      - ${fields.join('\n        ')}\n`;
const kase = (name: string, yaml: string, line: number | string, problem: string): PipelineCase => ({ kind: 'pipeline', name, yaml, message: at(line, problem) });

export const PIPELINE_CASES: PipelineCase[] = [
  kase('alias bomb (billion laughs)', aliasBomb(), ANY, 'alias'),
  kase('undefined alias', `${ok()}  test:\n    steps: *nope\n`, 7, 'alias|nope'),
  kase('merge of an undefined alias', `${JOB}    <<: *base\n    steps:\n      - run: echo x\n`, 3, 'alias|base'),
  kase('job named __proto__', 'jobs:\n  __proto__:\n    steps:\n      - run: echo x\n', 2, '__proto__|job'),
  kase('NUL in run', step('name: s', 'run: "echo a\\0rm -rf x"'), 5, 'NUL|control|null'),
  kase('timeout 0s', step('name: s', 'timeout: 0s', 'run: echo x'), 5, 'timeout|duration|positive|at least'),
  kase('timeout in words', step('name: s', 'timeout: 5 minutes', 'run: echo x'), 5, 'timeout|duration'),
  kase('timeout over 2h', step('name: s', 'timeout: 3h', 'run: echo x'), 5, '2h|timeout'),
  kase('tabs as indentation', 'jobs:\n\tbuild:\n\t\tsteps:\n\t\t\t- run: echo x\n', 2, 'tab'),
  kase('duplicate job keys', `${ok()}  build:\n    steps:\n      - run: echo again\n`, 6, 'unique|duplicate'),
  kase('duplicate step keys', step('run: echo x', 'run: echo y'), 5, 'unique|duplicate'),
  kase('steps as a string', `${JOB}    steps: "echo hi"\n`, 3, 'steps|array|expected'),
  kase('run as a number', step('run: 123'), 4, 'run|string'),
  kase('run as a list', step('run: [echo, x]'), 4, 'run|string'),
  kase('retry as a string', step('run: echo x', 'retry: "3"'), 5, 'retry|number'),
  kase('retry negative', step('run: echo x', 'retry: -1'), 5, 'retry|0|greater'),
  kase('retry 1e9', step('run: echo x', 'retry: 1000000000'), 5, 'retry|10|less'),
  kase('cycle in needs', 'jobs:\n  a:\n    needs: [b]\n    steps:\n      - run: echo a\n  b:\n    needs: [a]\n    steps:\n      - run: echo b\n', ANY, 'cycle|circular'),
  kase('a job needing itself', 'jobs:\n  a:\n    needs: [a]\n    steps:\n      - run: echo a\n', 3, 'cycle|itself|circular'),
  kase('needs of an unknown job', 'jobs:\n  a:\n    needs: [nope]\n    steps:\n      - run: echo a\n', 3, 'unknown|nope'),
  kase('a 1 MB file', `${'# padding padding padding padding padding padding padding padding\n'.repeat(16_000)}${ok()}`, 1, 'bytes|too large|size'),
  kase('an empty file', '', ANY, 'jobs|empty'),
  kase('a list instead of a map', '- jobs\n- steps\n', 1, 'object|map|expected'),
  kase('jobs: null', 'jobs:\n', ANY, 'jobs'),
  kase('a step name with a slash', step('name: a/b', 'run: echo x'), 4, 'name|/'),
  kase('an env name starting with a digit', step('run: echo x', 'env:', '  1X: v'), '[56]', 'env|variable'),
  kase('a job name with a space', 'jobs:\n  my job:\n    steps:\n      - run: echo x\n', 2, 'job name'),
  kase('an unknown network mode', `${JOB}    network: full\n    steps:\n      - run: echo x\n`, 3, 'network|none|isolated'),
  kase('deep nesting (2 000 levels)', `${ok()}x: ${'['.repeat(2000)}${']'.repeat(2000)}\n`, ANY, 'nest|deep|depth|x|unrecognized'),
  kase('an unknown tag', step('run: !!js/function "function () {}"'), 4, 'tag|js/function'),
  kase('two documents', `${ok()}---\n${ok()}`, ANY, 'document'),
  kase('101 jobs', `jobs:\n${Array.from({ length: 101 }, (_, i) => `  j${i}:\n    steps:\n      - run: echo ${i}\n`).join('')}`, ANY, 'at most 100 jobs'),
  kase('a misspelled key', `${JOB}    stepz:\n      - run: echo x\n`, 3, 'stepz|unrecognized'),
  // Issue 17: a matrix of 17 × 17 combinations (at most 256).
  kase('a matrix over 256 combinations', `${JOB}    matrix:\n      a: [${[...Array(17).keys()].join(', ')}]\n      b: [${[...Array(17).keys()].join(', ')}]\n    steps:\n      - run: echo x\n`, 4, 'jobs\\.build\\.matrix: .*289 combinations; at most 256'),
];
