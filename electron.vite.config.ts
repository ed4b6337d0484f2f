import { resolve } from 'node:path'
import react from '@vitejs/plugin-react'
import { defineConfig } from 'electron-vite'
import type { Plugin } from 'vite'

const root = import.meta.dirname

/**
 * index.html carries the built app's Content-Security-Policy (no inline script or style). Vite's
 * dev server injects an inline script for hot reload and inline styles, so `npm run dev` alone
 * gets a policy that allows them; the build keeps the strict one.
 */
const devContentSecurityPolicy: Plugin = {
  name: 'gtm-dev-csp',
  apply: 'serve',
  transformIndexHtml: (html) =>
    html.replace(
      /script-src 'self'; style-src 'self';/,
      "script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; connect-src 'self' ws:;",
    ),
}

// electron-vite looks in src/main, src/preload and src/renderer by default; ours live in
// src-main, src-main/preload and src-renderer, with output in out/{main,preload,renderer}.
export default defineConfig({
  main: {
    build: {
      outDir: resolve(root, 'out/main'),
      rolldownOptions: {
        input: { index: resolve(root, 'src-main/index.ts') },
      },
    },
  },
  preload: {
    build: {
      outDir: resolve(root, 'out/preload'),
      // Sandboxed preloads cannot require packages: bundle everything (zod included) into
      // one CommonJS file. Only `electron` stays external; the sandbox provides it.
      externalizeDeps: false,
      isolatedEntries: true,
      rolldownOptions: {
        input: { index: resolve(root, 'src-main/preload/index.ts') },
        output: { format: 'cjs', entryFileNames: '[name].cjs' },
      },
    },
  },
  renderer: {
    root: resolve(root, 'src-renderer'),
    build: {
      outDir: resolve(root, 'out/renderer'),
      rolldownOptions: {
        input: { index: resolve(root, 'src-renderer/index.html') },
      },
    },
    plugins: [react(), devContentSecurityPolicy],
  },
})
