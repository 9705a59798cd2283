/**
 * Chooses the pilot's payload isolation at start (pilot/isolation.ts) and readies the node for it:
 * under job uids the working area must let them reach their own directory and nothing else, and the
 * pilot's credential files must not be readable by other users.
 */
import { statSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import path from 'node:path';
import type { PilotConfig, RawPilotOptions } from './config.ts';
import { isolationUnavailable, probeIsolationHost, resolveIsolation, type PayloadIsolation } from './isolation.ts';

export async function setUpIsolation(
  config: PilotConfig,
  raw: RawPilotOptions,
  env: NodeJS.ProcessEnv,
): Promise<PayloadIsolation> {
  const secretFiles = [raw.tokenFile, raw.secretFile]
    .filter((file): file is string => file !== undefined)
    .map((file) => path.resolve(file));
  const host =
    config.isolation === 'none' ? { isRoot: false, bwrapPath: null, setprivPath: null } : await probeIsolationHost(env);
  const isolation = resolveIsolation(
    {
      choice: config.isolation,
      workdir: config.workdir,
      secretFiles,
      readOnlyPaths: config.isolationReadOnlyPaths,
      jobUids: config.jobUids,
    },
    host,
  );
  if (isolation.name === 'uid') {
    // Searchable, not listable: a job uid walks to its own directory and sees no other name.
    await chmod(config.workdir, 0o711);
    for (const file of secretFiles) {
      if ((statSync(file).mode & 0o004) !== 0) {
        throw isolationUnavailable(
          `jobs run under other uids, but ${file} is readable by every user: chmod o-r it (e.g. chmod 600)`,
        );
      }
    }
  }
  return isolation;
}
