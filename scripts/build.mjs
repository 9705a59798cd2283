// Builds the shipped artifacts:
//  - dist/pilot.mjs: the pilot, ONE self-contained ESM file (no node_modules beside it on a worker node);
//  - dist/cli.mjs:   the `pilothouse` command; dependencies stay external and load from node_modules;
//  - dist/web/:      the web monitor (Vite: web/ → static files the matcher serves at /ui/).
import { build } from 'esbuild';
import { chmod, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const quiet = process.argv.includes('--quiet');

// CommonJS dependencies inside an ESM bundle call require('os') and friends; without a real
// `require` they fail at runtime with "Dynamic require of x is not supported" (esbuild #1921).
const requireShim = [
  "import { createRequire as __phCreateRequire } from 'node:module';",
  'const require = __phCreateRequire(import.meta.url);',
].join('\n');

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  keepNames: true, // error class names must survive: stack traces come back from remote nodes
  sourcemap: false,
  logLevel: quiet ? 'warning' : 'info',
  absWorkingDir: root,
};

await build({
  ...common,
  entryPoints: ['pilot/main.ts'],
  outfile: 'dist/pilot.mjs',
  banner: { js: `#!/usr/bin/env node\n${requireShim}` },
  // Shipped to every worker node and compiled at each start: minified (names kept, see above), with
  // the dependencies' licences gathered at the end.
  minify: true,
  legalComments: 'eof',
  // Server-only native modules must never reach a worker node.
  external: [],
  plugins: [forbidPackages(['better-sqlite3', 'pg', 'node-cron']), zodEnglishOnly()],
});

await build({
  ...common,
  entryPoints: ['cli/main.ts'],
  outfile: 'dist/cli.mjs',
  packages: 'external',
  banner: { js: '#!/usr/bin/env node' },
});

// The web monitor: built where Vite is installed (a development checkout); a package ships it built.
const vite = await import('vite').catch(() => null);
if (vite) await vite.build({ configFile: path.join(root, 'web/vite.config.ts'), logLevel: quiet ? 'warn' : 'info' });

await chmod(path.join(root, 'dist/pilot.mjs'), 0o755);
await chmod(path.join(root, 'dist/cli.mjs'), 0o755);
if (!quiet) {
  const { size } = await stat(path.join(root, 'dist/pilot.mjs'));
  console.log(`dist/pilot.mjs: ${(size / 1024).toFixed(0)} KiB`);
}

function forbidPackages(names) {
  return {
    name: 'forbid-server-packages',
    setup(b) {
      const filter = new RegExp(`^(${names.map((n) => n.replace(/[-/]/g, '\\$&')).join('|')})($|/)`);
      b.onResolve({ filter }, (args) => ({
        errors: [{ text: `${args.path} may not be bundled into the pilot (imported by ${args.importer})` }],
      }));
    },
  };
}

/**
 * zod re-exports its ~50 message locales as `z.locales`, which keeps all of them in a bundle (about
 * 280 KiB of the pilot's 930, parsed at every pilot start); the pilot only ever shows English
 * messages (zod's default). Its locale index becomes English alone; `z.locales.en` still works.
 */
function zodEnglishOnly() {
  return {
    name: 'zod-english-only',
    setup(b) {
      b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
        /[\\/]node_modules[\\/]zod[\\/]/.test(args.importer)
          ? {
              path: path.join(path.dirname(args.importer), '..', 'locales', 'english-only.js'),
              namespace: 'zod-english-only',
            }
          : undefined,
      );
      b.onLoad({ filter: /.*/, namespace: 'zod-english-only' }, (args) => ({
        contents: `export { default as en } from ${JSON.stringify(path.join(path.dirname(args.path), 'en.js'))};`,
        resolveDir: path.dirname(args.path),
        loader: 'js',
      }));
    },
  };
}
