// ESLint for what tsc does not check: promises nobody waits for or whose rejection nobody sees
// (in a root daemon an unhandled rejection is a crash, a forgotten await a race).
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**'] },
  {
    files: ['src/**/*.ts', 'bench/**/*.ts', 'test/**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { project: ['./tsconfig.test.json'], tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // node:test's describe/it/test return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] }] }],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      'no-async-promise-executor': 'error',
    },
  },
  {
    // A worker never loads fastify (~14 MB of RSS, bench row 9): only the plugin over HTTP and the
    // control socket's app use it, and main.ts imports those two with import(), when first needed.
    files: ['src/**/*.ts'],
    ignores: ['src/api/plugin-http.ts', 'src/operator/control.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [{ name: 'fastify', allowTypeImports: true, message: 'import fastify for types only here: a worker must not load it (bench row 9)' }],
          patterns: [{ group: ['**/plugin-http.ts', '**/operator/control.ts', './control.ts'], allowTypeImports: true, message: "load it with import() when first needed (main.ts): it loads fastify, which a worker must not (bench row 9)" }],
        },
      ],
    },
  },
);
