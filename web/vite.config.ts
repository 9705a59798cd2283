// The web monitor's build: web/ → dist/web/, served by the matcher at /ui/. `npx vite web` runs a
// development server that proxies the API to a matcher on PILOTHOUSE_MATCHER (default :8080).
import { defineConfig } from 'vite';

const matcher = process.env.PILOTHOUSE_MATCHER ?? 'http://127.0.0.1:8080';

export default defineConfig({
  root: import.meta.dirname,
  base: '/ui/',
  esbuild: { jsx: 'automatic' },
  build: {
    outDir: '../dist/web',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    target: 'es2022',
    chunkSizeWarningLimit: 1024,
  },
  server: { proxy: { '/api': matcher, '/.well-known': matcher } },
});
