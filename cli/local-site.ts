/**
 * The all-in-one's "site": this machine as one CE with the site director's local backend, written as
 * an ordinary site-director configuration file in the data directory (so that what `up` runs is what
 * an operator would write, and can be copied as a starting point).
 */
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadDirectorConfig, type DirectorConfig } from '../site-director/config/load.ts';

export const LOCAL_SITE = `Local.${os.hostname().split('.')[0] || 'localhost'}`;
export const LOCAL_VO = 'local';

export interface LocalSiteOptions {
  dataDir: string;
  /** Pilots at once, at most. */
  pilots: number;
  coresPerPilot: number;
  /** How often the director looks for work (node-cron, seconds field first). */
  schedule: string;
  idleTimeoutSec: number;
  /** Arguments every local pilot gets (e.g. `--isolation none` where nothing can isolate payloads). */
  pilotArgs?: string[];
}

export async function writeLocalSiteConfig(options: LocalSiteOptions): Promise<DirectorConfig> {
  const file = path.join(options.dataDir, 'site-director.json');
  const cores = Math.max(1, options.coresPerPilot);
  const config = {
    name: 'local',
    cycle: { schedule: options.schedule, stateDir: 'site-director-state', ceTimeoutSec: 30 },
    // A local pilot that matched nothing means the queue was described wrong: back off only briefly.
    throttles: { emptyPilots: { threshold: 5, initialBackoffSec: 10, maxBackoffSec: 120 } },
    pilot: {
      idleTimeoutSec: options.idleTimeoutSec,
      ...(options.pilotArgs === undefined ? {} : { extraArgs: options.pilotArgs }),
    },
    sites: [
      {
        name: LOCAL_SITE,
        vos: [LOCAL_VO],
        ces: [
          {
            name: 'localhost',
            type: 'local',
            local: {},
            queues: [
              {
                name: 'local',
                maxCores: cores,
                memoryMB: Math.floor((os.totalmem() / 1024 / 1024) * 0.8),
                maxWaitingPilots: options.pilots,
                maxRunningPilots: options.pilots,
                maxPilotsPerCycle: options.pilots,
              },
            ],
          },
        ],
      },
    ],
  };
  await writeFile(file, `${JSON.stringify(config, null, 2)}\n`);
  return loadDirectorConfig(file);
}
