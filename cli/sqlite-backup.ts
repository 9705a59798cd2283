/**
 * A consistent online copy of a SQLite store, taken while the matcher keeps writing: `VACUUM INTO`
 * reads one snapshot (a single read transaction; WAL lets writers go on) and writes a compact copy.
 * SQLite's page-by-page backup API would restart whenever the matcher writes between two steps, so it
 * may never finish on a busy store. The copy runs in a worker thread, so this thread can show its
 * progress from the size of the file being written.
 */
import { createRequire } from 'node:module';
import { stat } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { PilothouseError } from '../shared/errors.ts';

// CommonJS, evaluated in the worker: it only needs better-sqlite3, whose path this thread resolves.
const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.source, { fileMustExist: true, timeout: 10000 });
try {
  db.prepare('VACUUM INTO ?').run(workerData.destination);
} finally {
  db.close();
}
parentPort.postMessage('done');
`;

export interface BackupResult {
  bytes: number;
  seconds: number;
  /** Jobs in the copy (read back from it, after its integrity check). */
  jobs: number;
}

/** Copies `source` to `destination` (which must not exist); `onProgress` gets the bytes written so far. */
export async function backupSqlite(
  source: string,
  destination: string,
  onProgress: (bytesWritten: number) => void,
): Promise<BackupResult> {
  const started = performance.now();
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { module: createRequire(import.meta.url).resolve('better-sqlite3'), source, destination },
  });
  const poll = setInterval(() => {
    stat(destination).then(
      (s) => onProgress(s.size),
      () => undefined,
    );
  }, 200);
  try {
    await new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', (error) =>
        reject(new PilothouseError('STORE_UNAVAILABLE', `the copy of ${source} failed: ${error.message}`)),
      );
      worker.once('exit', (code) => {
        if (code !== 0) reject(new PilothouseError('STORE_UNAVAILABLE', `the copy of ${source} stopped (${code})`));
      });
    });
  } finally {
    clearInterval(poll);
    await worker.terminate();
  }
  const copy = new Database(destination, { readonly: true, fileMustExist: true });
  try {
    const check = copy.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new PilothouseError('STORE_UNAVAILABLE', `the copy failed its integrity check: ${check}`);
    const jobs = copy.prepare('SELECT count(*) FROM jobs').pluck().get() as number;
    const { size } = await stat(destination);
    onProgress(size);
    return { bytes: size, seconds: (performance.now() - started) / 1000, jobs };
  } finally {
    copy.close();
  }
}
