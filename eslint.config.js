import neostandard from 'neostandard'
import tseslint from 'typescript-eslint'

const restrict = (names, message) => ({
  'no-restricted-imports': ['error', { paths: names.map((name) => ({ name, message })) }]
})

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.tap/**', '.scratch/**', 'bench/results/**'] }),
  ...tseslint.configs.recommendedTypeChecked.map((c) => ({ ...c, files: ['**/*.ts'] })),
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      // fastify handlers and hooks are async by contract even when they do not await
      '@typescript-eslint/require-await': 'off'
    }
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      // tap's t.test() returns a promise that tap itself awaits
      '@typescript-eslint/no-floating-promises': 'off'
    }
  },
  {
    // cache/ holds the pure RFC decisions: standard library only.
    files: ['src/cache/**/*.ts'],
    rules: restrict(['fastify', 'undici', 'ioredis', 'pino', '@fastify/reply-from', 'prom-client'], 'src/cache is pure: no I/O libraries')
  },
  {
    files: ['src/store/**/*.ts'],
    rules: restrict(['fastify', 'undici', '@fastify/reply-from'], 'stores talk to storage only')
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/main.ts', 'src/cluster.ts'],
    rules: { 'n/no-process-exit': 'error' }
  },
  { files: ['**/*.js'], ...tseslint.configs.disableTypeChecked }
]
