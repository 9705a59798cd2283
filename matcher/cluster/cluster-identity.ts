/**
 * Replicas must share one data directory: it holds the signing keys (a token signed by one replica
 * verifies on the others), `admin.token` and the sandboxes (an output uploaded through one replica
 * downloads through another). Sandboxes stay files rather than database rows because they are large
 * blobs that would bloat the database and its backups; keys stay files so that a key ring can be
 * rotated and inspected with ordinary tools.
 *
 * A replica started on a directory of its own would run and fail later in confusing ways (tokens
 * refused at random behind a load balancer, sandboxes missing), so the database and the directory
 * carry one cluster id, and a replica whose directory does not carry the database's refuses to start.
 */
import { randomUUID } from 'node:crypto';
import { link, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PilothouseError } from '../../shared/errors.ts';
import type { JobStore } from '../store/job-store.ts';

export const CLUSTER_ID_SETTING = 'cluster-id';
export const CLUSTER_ID_FILE = 'cluster-id';

type Settings = Pick<JobStore, 'getSetting' | 'createSetting'>;

/** The cluster's id, once the data directory and the database are known to agree on it. */
export async function checkClusterIdentity(options: {
  dataDir: string;
  settings: Settings;
  at: string;
}): Promise<string> {
  const file = path.join(options.dataDir, CLUSTER_ID_FILE);
  // The directory decides first (an exclusive create: replicas starting together on one directory
  // agree), then the database adopts the directory's id unless it already holds one.
  const found = await readClusterId(file);
  const inDirectory = found ?? (await claimDirectory(file, randomUUID()));
  const stored =
    (await options.settings.getSetting(CLUSTER_ID_SETTING)) ??
    (await options.settings.createSetting(CLUSTER_ID_SETTING, inDirectory, { at: options.at, by: 'first matcher' }));
  if (stored.value === inDirectory) return inDirectory;
  // A directory this start marked is put back as it was, so that the fix is only to point at the right one.
  if (found === null) await rm(file, { force: true });
  throw mismatch(file, stored.value, found);
}

async function readClusterId(file: string): Promise<string | null> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Writes the id unless another replica on the same directory did first; returns the one on disk. */
async function claimDirectory(file: string, clusterId: string): Promise<string> {
  // Written aside, then linked into place: link() fails if the file exists, and a reader never sees
  // the file before its content.
  const written = `${file}.${clusterId}.tmp`;
  await writeFile(written, `${clusterId}\n`, { mode: 0o644 });
  try {
    await link(written, file);
    return clusterId;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return (await readClusterId(file)) ?? clusterId;
  } finally {
    await rm(written, { force: true });
  }
}

function mismatch(file: string, clusterId: string, found: string | null): PilothouseError {
  const what =
    found === null
      ? `${file} is missing (if this is the replicas' shared directory, write ${clusterId} into it)`
      : `${file} holds cluster ${found}`;
  return new PilothouseError(
    'CONFIG_INVALID',
    `the database belongs to cluster ${clusterId} but ${what}: every replica must use the data directory ` +
      'the others use (a shared file system, given as --data-dir), which holds the signing keys and the ' +
      'sandboxes; a directory of its own would make its tokens and sandboxes unknown to the other replicas',
    { field: 'dataDir', clusterId, dataDirClusterId: found },
  );
}
