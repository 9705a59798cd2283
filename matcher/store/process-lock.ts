/**
 * One process per SQLite file: the matcher takes `<file>.lock` (holding its pid) when it opens its
 * stores and removes it when it stops. A second matcher on the same file is refused at start with
 * STORE_IN_USE — two processes writing one SQLite file freeze each other's event loop for the busy
 * timeout. A lock whose process is gone (a crash, a SIGKILL) is taken over.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { PilothouseError } from '../../shared/errors.ts';

export interface ProcessLock {
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: kill(0) said it exists
  }
}

export function acquireProcessLock(file: string, what: string): ProcessLock {
  const lockFile = `${file}.lock`;
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      const fd = openSync(lockFile, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          rmSync(lockFile, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(readFileSync(lockFile, 'utf8').trim());
      if (Number.isInteger(holder) && holder > 0 && alive(holder)) {
        throw new PilothouseError(
          'STORE_IN_USE',
          `${what} is in use by process ${holder}${holder === process.pid ? ' (this one)' : ''}: one matcher per SQLite file (${lockFile}); run several matchers on PostgreSQL (--db postgres://…)`,
          { field: 'db' },
        );
      }
      rmSync(lockFile, { force: true }); // its process is gone
    }
  }
  throw new PilothouseError('STORE_IN_USE', `${what}: cannot take ${lockFile}`, { field: 'db' });
}
