// Runs the node:test suites. Node 20 treats --test arguments as paths (not globs) and cannot load
// .ts on its own, so this walks test/, picks files by suffix and runs them through tsx.
//   node scripts/run-tests.mjs            all suites
//   node scripts/run-tests.mjs --unit     *.test.ts without .int./.e2e. (no services, no network)
//   node scripts/run-tests.mjs matcher    only files whose path contains "matcher"
import { readdir } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const filters = args.filter((a) => !a.startsWith('--'));

async function walk(dir) {
  const entries = await readdir(dir, { withFileTypes: true });
  const files = await Promise.all(
    entries.map((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)])),
  );
  return files.flat();
}

const files = (await walk(path.join(root, 'test')))
  .filter((f) => f.endsWith('.test.ts'))
  .filter((f) => !unitOnly || !/\.(int|e2e)\.test\.ts$/.test(f))
  .filter((f) => filters.length === 0 || filters.some((needle) => f.includes(needle)))
  .map((f) => path.relative(root, f))
  .sort();

if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}

const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files],
  { cwd: root, stdio: 'inherit' },
);
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
