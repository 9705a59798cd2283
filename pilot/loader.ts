/**
 * Entry point of dist/pilot.mjs. The pilot itself (pilot/main.ts and everything it imports) is built
 * as one CommonJS function and carried here as a string; this loader compiles it with node:vm, handing
 * V8 the code cache an earlier pilot on this node kept (pilot/code-cache.ts), and runs it. Without a
 * usable cache it compiles from source as any module would, and keeps the cache once the pilot has run
 * for a moment (so the cache also holds the functions the start-up ran), or at its exit if sooner.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { codeCacheFile, readCodeCache, writeCodeCache } from './code-cache.ts';

/** The pilot program: `(function (exports, require, module, __filename, __dirname) { … })`. */
declare const PILOT_SOURCE: string;
/** The first 16 hex digits of the sha256 of PILOT_SOURCE. */
declare const PILOT_SOURCE_ID: string;

/** How long a pilot runs before it keeps its compiled code: past its hello and first offer. */
const KEEP_CODE_AFTER_MS = 1000;

type CommonJsWrapper = (
  exports: object,
  require: NodeJS.Require,
  module: { exports: object },
  filename: string,
  dirname: string,
) => void;

const filename = fileURLToPath(import.meta.url);
const cacheFile = codeCacheFile(PILOT_SOURCE_ID);
const cachedData = cacheFile === null ? undefined : readCodeCache(cacheFile);
const script = new vm.Script(PILOT_SOURCE, { filename, ...(cachedData === undefined ? {} : { cachedData }) });

if (cacheFile !== null && (cachedData === undefined || script.cachedDataRejected === true)) {
  let kept = false;
  const keep = (): void => {
    if (kept) return;
    kept = true;
    writeCodeCache(cacheFile, script.createCachedData());
  };
  setTimeout(keep, KEEP_CODE_AFTER_MS).unref();
  process.once('exit', keep);
}

const pilotModule = { exports: {} };
(script.runInThisContext() as CommonJsWrapper)(
  pilotModule.exports,
  createRequire(filename),
  pilotModule,
  filename,
  path.dirname(filename),
);
