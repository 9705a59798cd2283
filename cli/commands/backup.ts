/** `pilothouse backup FILE`: a consistent copy of the SQLite store, taken while the matcher runs. */
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import { PilothouseError } from '../../shared/errors.ts';
import { parseStoreLocation } from '../../matcher/store/location.ts';
import { createProgress } from '../progress.ts';
import { printJson } from '../format.ts';
import { backupSqlite } from '../sqlite-backup.ts';

const MIB = 1024 * 1024;

export function backupCommand(): Command {
  return new Command('backup')
    .description(
      "copy the matcher's SQLite store to FILE, consistently, while the matcher runs (PostgreSQL: use pg_dump)",
    )
    .argument('<file>', 'the copy to write (must not exist)')
    .requiredOption('--data-dir <dir>', "the matcher's data directory")
    .option('--db <location>', 'the store, as given to the server (default: <data-dir>/pilothouse.sqlite)')
    .option('--json', 'print the result as JSON', false)
    .action(async (file: string, options: { dataDir: string; db?: string; json: boolean }) => {
      const location = parseStoreLocation(options.db, options.dataDir);
      if (location.kind !== 'sqlite') {
        throw new PilothouseError(
          'CONFIG_INVALID',
          'the store is PostgreSQL: back it up with pg_dump (or your database service), not pilothouse backup',
          { field: 'db' },
        );
      }
      if (!existsSync(location.path)) {
        throw new PilothouseError('CONFIG_INVALID', `no store at ${location.path}`, { field: 'data-dir' });
      }
      const destination = path.resolve(file);
      if (existsSync(destination)) {
        throw new PilothouseError('CONFIG_INVALID', `${destination} exists: the copy is never written over a file`, {
          field: 'file',
        });
      }
      const totalMiB = Math.max(1, Math.ceil((await stat(location.path)).size / MIB));
      const progress = options.json ? null : createProgress('copying (MiB)', totalMiB);
      const result = await backupSqlite(location.path, destination, (bytes) =>
        progress?.update(Math.min(totalMiB, Math.round(bytes / MIB))),
      );
      progress?.finish();
      if (options.json) printJson({ file: destination, ...result });
      else {
        const size = (result.bytes / MIB).toFixed(1);
        process.stdout.write(
          `${destination}: ${size} MiB, ${result.jobs} jobs, checked, in ${result.seconds.toFixed(1)} s\n`,
        );
      }
    });
}
