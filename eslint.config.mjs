// ESLint flat config: typed TS rules, no import cycles, and no Node built-ins in workflow code
// (workflows run in Temporal's deterministic sandbox, where I/O would break replay).
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

// The data layer (docs/decisions/0019-data-layer.md): SQL lives in core/stores/ (one store per aggregate),
// core/db.ts (pool, transactions) and core/migrate.ts + migrations/; tests and benchmarks set up and
// check data directly. Anywhere else a SQL string, a `.query(` call or a `pg` import is an error.
// Server-level statements also live where the server is driven: core/db-leader.ts and core/db-replicas.ts (is it the
// primary?), core/backup-postgres.ts (WAL switch, recovery) and infra/provision/postgres.ts (roles,
// databases).
const SQL_HOMES = ['core/stores/**', 'core/db.ts', 'core/db-leader.ts', 'core/db-replicas.ts', 'core/backup-postgres.ts', 'infra/provision/postgres.ts', 'core/migrate.ts', 'migrations/**', 'test/**', 'bench/**'];
// Not yet migrated: files that still hold SQL. Empty now; it stays so a migration in progress can
// be listed here honestly rather than hidden.
const SQL_NOT_YET_MIGRATED = [];
const SQL_MESSAGE = 'SQL belongs in a store (core/stores/<aggregate>-store.ts); call the store instead.';
const SQL_KEYWORD = '/^\\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\\s/';

export default tseslint.config(
  { ignores: ['node_modules/**', '.data/**', '.tools/**', 'dist/**', 'console/dist/**', 'coverage/**', '**/*.cjs', 'git-server/hooks/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver': { node: { extensions: ['.ts', '.js'] } }, 'import-x/extensions': ['.ts'] },
    rules: {
      'import-x/no-cycle': ['error', { maxDepth: 10 }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Tests parse JSON answers of many shapes; `any` there keeps assertions readable.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', {
        paths: nodeBuiltins.map((name) => ({ name, message: 'Workflows are deterministic: no Node built-ins (use activities).' })),
        patterns: [{ group: ['**/activities/**'], allowTypeImports: true, message: 'Import activities as types only (import type).' }],
      }],
    },
  },
  {
    files: ['**/*.ts'],
    ignores: [...SQL_HOMES, ...SQL_NOT_YET_MIGRATED],
    rules: {
      'no-restricted-imports': ['error', { paths: [{ name: 'pg', message: SQL_MESSAGE }] }],
      'no-restricted-syntax': [
        'error',
        { selector: `Literal[value=${SQL_KEYWORD}]`, message: SQL_MESSAGE },
        { selector: `TemplateLiteral > TemplateElement:first-child[value.raw=${SQL_KEYWORD}]`, message: SQL_MESSAGE },
        { selector: "CallExpression[callee.property.name='query']", message: SQL_MESSAGE },
      ],
    },
  },
);
