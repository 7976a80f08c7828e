import { spawn } from 'node:child_process';
import path from 'node:path';

/**
 * The data layer's lint rule (eslint.config.mjs, docs/decisions/0019-data-layer.md): SQL, `.query(` calls
 * and `pg` imports are refused outside core/stores/ and the other SQL homes. Runs the project's
 * ESLint on source text as if it were a file at a given path.
 */
const ROOT = path.resolve(__dirname, '../..');
const ESLINT = path.join(ROOT, 'node_modules/.bin/eslint');

async function lintAs(filePath: string, source: string): Promise<{ ruleId: string | null; message: string }[]> {
  const child = spawn(ESLINT, ['--format', 'json', '--stdin', '--stdin-filename', filePath], { cwd: ROOT });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  child.stdin.end(source);
  // ESLint exits 1 when it found errors (its report is still on stdout), 2 when it could not lint.
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0 && code !== 1) throw new Error(`eslint exited ${code}: ${stderr}`);
  return (JSON.parse(stdout) as { messages: { ruleId: string | null; message: string }[] }[])[0].messages;
}

const SERVICE_WITH_SQL = `import type { Db } from '../../core/db';
export async function countRepos(db: Db): Promise<number> {
  const r = await db.query('SELECT count(*)::int AS n FROM repos');
  return r.rows[0].n;
}
export const update = \`UPDATE repos SET name = $1 WHERE id = $2\`;
`;

test('SQL in a service is refused: the statement, the template literal and the .query call', async () => {
  const messages = await lintAs('api/services/sql-lint-fixture.ts', SERVICE_WITH_SQL);
  const sql = messages.filter((m) => m.ruleId === 'no-restricted-syntax' && m.message.includes('core/stores/'));
  // The string literal, the .query( call and the template literal.
  expect(sql).toHaveLength(3);
});

test('a pg import outside the data layer is refused', async () => {
  const messages = await lintAs('activities/sql-lint-fixture.ts', `import pg from 'pg';\nexport const Pool = pg.Pool;\n`);
  expect(messages.filter((m) => m.ruleId === 'no-restricted-imports')).toHaveLength(1);
});

test('the same code is accepted in a store', async () => {
  const messages = await lintAs('core/stores/sql-lint-fixture-store.ts', SERVICE_WITH_SQL);
  expect(messages.filter((m) => m.ruleId === 'no-restricted-syntax' || m.ruleId === 'no-restricted-imports')).toEqual([]);
});

test('words that merely start like SQL in prose are not SQL', async () => {
  const messages = await lintAs('api/services/sql-lint-fixture.ts', `export const help = 'Select a repository, then update its settings';\n`);
  expect(messages.filter((m) => m.ruleId === 'no-restricted-syntax')).toEqual([]);
});
