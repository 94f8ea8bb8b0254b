import neostandard from 'neostandard'
import tseslint from 'typescript-eslint'

// The layering of /work/shared/style.md ("Direction of dependencies"), one rule per folder of
// src/: `folders` are the src/ folders (or top-level modules) it must not import, `libraries`
// the packages kept out of it. Dependencies point one way, so no two folders import each other.
const LIBRARIES_OUTSIDE_CACHE = ['fastify', 'undici', 'ioredis', 'pino', '@fastify/reply-from', 'prom-client']
const layer = (folder, folders, libraries = []) => ({
  files: [`src/${folder}/**/*.ts`],
  rules: {
    'no-restricted-imports': ['error', {
      paths: libraries.map((name) => ({ name, message: `src/${folder} does not use ${name} (style.md: each library in one folder)` })),
      patterns: folders.map((other) => ({
        regex: `^(\\.\\./)+${other}(/|\\.ts$)`,
        message: `src/${folder} must not import src/${other} (style.md: direction of dependencies)`
      }))
    }]
  }
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
  // cache/ holds the pure RFC decisions: standard library only, no other folder of src/.
  layer('cache', ['config', 'coordination', 'store', 'origin', 'lifecycle', 'invalidation', 'http', 'observability', 'gateway', 'main', 'bounded-map'], LIBRARIES_OUTSIDE_CACHE),
  layer('config', ['coordination', 'store', 'origin', 'lifecycle', 'invalidation', 'http', 'observability', 'gateway', 'main']),
  // coordination/: what instances tell each other; used by lifecycle/, invalidation/ and store/, imports none of them.
  layer('coordination', ['config', 'store', 'origin', 'lifecycle', 'invalidation', 'http', 'observability', 'gateway', 'main'], ['fastify', 'undici', '@fastify/reply-from']),
  // Stores talk to storage only.
  layer('store', ['config', 'origin', 'lifecycle', 'invalidation', 'http', 'observability', 'gateway', 'main'], ['fastify', 'undici', '@fastify/reply-from']),
  layer('origin', ['coordination', 'store', 'lifecycle', 'invalidation', 'http', 'observability', 'gateway', 'main']),
  layer('lifecycle', ['invalidation', 'http', 'observability', 'gateway', 'main']),
  layer('invalidation', ['lifecycle', 'http', 'gateway', 'main']),
  layer('http', ['gateway', 'main']),
  layer('observability', ['http', 'invalidation', 'gateway', 'main']),
  {
    files: ['src/**/*.ts'],
    ignores: ['src/main.ts', 'src/cluster.ts'],
    rules: { 'n/no-process-exit': 'error' }
  },
  { files: ['**/*.js'], ...tseslint.configs.disableTypeChecked }
]
