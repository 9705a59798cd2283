// Builds the shipped artifacts:
//  - dist/pilot.mjs: the pilot, ONE self-contained file (no node_modules beside it on a worker node): a
//                   small ESM loader carrying the pilot as one CommonJS function it compiles with a
//                   code cache (pilot/loader.ts);
//  - dist/pilot-parts.json: what each package (and our own pilot/ and shared/) adds to that program, in
//                   bytes of minified code (the pilot benchmark reports it);
//  - dist/cli.mjs:   the `pilothouse` command; dependencies stay external and load from node_modules;
//  - dist/web/:      the web monitor (Vite: web/ → static files the matcher serves at /ui/).
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { isBuiltin } from 'node:module';
import { chmod, mkdir, stat, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const quiet = process.argv.includes('--quiet');
/** esbuild's namespace of the add-ons compiled into the pilot as absent (see absentFromPilot). */
const ABSENT_NAMESPACE = 'absent-from-pilot';

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

await buildPilot();
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

/**
 * dist/pilot.mjs: the pilot program built as one CommonJS function (so that node:vm can compile it
 * with a code cache; an ES module cannot be), embedded as a string in its loader.
 */
async function buildPilot() {
  const program = await build({
    ...common,
    entryPoints: ['pilot/main.ts'],
    format: 'cjs',
    write: false,
    metafile: true,
    outfile: 'dist/pilot-program.cjs',
    // Shipped to every worker node and compiled at each start without a cache: minified (names kept,
    // see above), with the dependencies' licences gathered at the end.
    minify: true,
    legalComments: 'eof',
    // Server-only native modules must never reach a worker node.
    external: [],
    plugins: [
      forbidPackages(['better-sqlite3', 'pg', 'node-cron']),
      zodEnglishOnly(),
      absentFromPilot(['bufferutil', 'utf-8-validate']),
    ],
  });
  const [output] = program.outputFiles;
  if (program.warnings.length > 0 || output === undefined) {
    throw new Error(
      'the pilot program must build without warnings (import.meta and top-level await do not work in it)',
    );
  }
  // What the program still loads at run time: Node's own modules only (nothing from the worker node's
  // disk), and through require (node:vm compiles it without a module loader: import() would fail).
  const loadedAtRunTime = Object.entries(program.metafile.inputs).flatMap(([file, input]) =>
    input.imports.filter((i) => i.external && i.path !== '<runtime>').map((i) => ({ ...i, file })),
  );
  const notBuiltIn = loadedAtRunTime.filter((i) => !isBuiltin(i.path)).map((i) => `${i.path} (in ${i.file})`);
  if (notBuiltIn.length > 0)
    throw new Error(`the pilot program may only load Node's modules: ${notBuiltIn.join(', ')}`);
  const dynamic = loadedAtRunTime.filter((i) => i.kind === 'dynamic-import').map((i) => `${i.path} (in ${i.file})`);
  if (dynamic.length > 0) throw new Error(`the pilot program may not keep a dynamic import(): ${dynamic.join(', ')}`);
  // The first file the build writes: on a fresh checkout dist/ does not exist yet.
  await mkdir(path.join(root, 'dist'), { recursive: true });
  await writeFile(path.join(root, 'dist/pilot-parts.json'), `${JSON.stringify(partsOf(program.metafile), null, 1)}\n`);
  const source = `(function (exports, require, module, __filename, __dirname) {${output.text}\n})`;
  await build({
    ...common,
    entryPoints: ['pilot/loader.ts'],
    outfile: 'dist/pilot.mjs',
    banner: { js: '#!/usr/bin/env node' },
    define: {
      PILOT_SOURCE: JSON.stringify(source),
      PILOT_SOURCE_ID: JSON.stringify(createHash('sha256').update(source).digest('hex').slice(0, 16)),
    },
  });
}

/**
 * Bytes of the minified program by where they come from: a package (the innermost node_modules
 * directory of the file, so a dependency's own dependencies count apart), or our top-level folder.
 */
function partsOf(metafile) {
  const bytes = new Map();
  for (const output of Object.values(metafile.outputs)) {
    for (const [file, { bytesInOutput }] of Object.entries(output.inputs)) {
      const inPackage = [...file.matchAll(/node_modules\/((?:@[^/]+\/)?[^/]+)/g)].at(-1)?.[1];
      const stub = file.startsWith(`${ABSENT_NAMESPACE}:`) ? file.slice(ABSENT_NAMESPACE.length + 1) : undefined;
      const part = inPackage ?? (stub ? `${stub} (stub)` : file.includes('/') ? `${file.split('/')[0]}/` : file);
      bytes.set(part, (bytes.get(part) ?? 0) + bytesInOutput);
    }
  }
  return Object.fromEntries([...bytes].sort((a, b) => b[1] - a[1]));
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
 * Optional native add-ons a dependency tries to require at run time (ws: bufferutil, utf-8-validate) and
 * does without: in the pilot they are absent for sure, instead of searched for in the worker node's
 * node_modules directories (a stat per parent directory at every start, and whatever it would find).
 */
function absentFromPilot(names) {
  return {
    name: ABSENT_NAMESPACE,
    setup(b) {
      const filter = new RegExp(`^(${names.map((n) => n.replace(/[-/]/g, '\\$&')).join('|')})$`);
      b.onResolve({ filter }, (args) => ({ path: args.path, namespace: ABSENT_NAMESPACE }));
      b.onLoad({ filter: /.*/, namespace: ABSENT_NAMESPACE }, (args) => ({
        contents: `throw Object.assign(new Error(${JSON.stringify(`${args.path} is not in the pilot`)}), { code: 'MODULE_NOT_FOUND' });`,
        loader: 'js',
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
