/**
 * The real computing elements of this machine, as scripts/provision.sh started them (SLURM with
 * munge and slurmdbd, an sshd on 127.0.0.1 with a key for the lab account, ARC A-REX). Tests that
 * need them fail, not skip, when the lab is missing: run scripts/provision.sh (as root) first.
 */
import { readFileSync } from 'node:fs';

export interface Lab {
  user: string;
  host: string;
  slurm: { conf: string; outputDir: string; partition: string; sacct: boolean };
  ssh: { host: string; port: number; user: string; key: string; knownHosts: string };
  arc: { url: string; ca: string; cert: string; key: string; queue: string };
}

export const LAB_DIR = process.env.PH_LAB_DIR ?? '/var/tmp/pilothouse-lab';

export function lab(): Lab {
  try {
    return JSON.parse(readFileSync(`${LAB_DIR}/lab.json`, 'utf8')) as Lab;
  } catch (error) {
    throw new Error(
      `the CE lab is not provisioned (${LAB_DIR}/lab.json: ${(error as NodeJS.ErrnoException).code ?? String(error)}): run scripts/provision.sh as root`,
    );
  }
}

export function sshTarget(l: Lab) {
  return {
    host: l.ssh.host,
    port: l.ssh.port,
    user: l.ssh.user,
    keyFile: l.ssh.key,
    knownHostsFile: l.ssh.knownHosts,
    options: [] as string[],
    connectTimeoutSec: 10,
  };
}
