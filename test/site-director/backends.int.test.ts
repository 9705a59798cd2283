/**
 * The backend conformance suite against real CEs: local processes; an SSH host (the lab's sshd);
 * SLURM (the lab's slurmctld/slurmd with munge and slurmdbd) driven here and over SSH; ARC A-REX over
 * HTTPS with the lab's test CA and client certificate.
 *
 * HTCondor is not packaged for Debian and cannot run here: its backend runs against a faithful replica
 * of condor_submit/condor_q/condor_history/condor_rm (test/fixtures/fake-condor) built from the
 * recorded output formats of HTCondor 25; the jobs it runs are real local processes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ArcBackend } from '../../site-director/backends/arc.ts';
import { HostProcessBackend } from '../../site-director/backends/host-process.ts';
import { HtcondorBackend } from '../../site-director/backends/htcondor.ts';
import { SlurmBackend } from '../../site-director/backends/slurm.ts';
import { LocalRunner } from '../../site-director/transport/command-runner.ts';
import { SshRunner } from '../../site-director/transport/ssh-runner.ts';
import { lab, sshTarget } from '../helpers/lab.ts';
import { backendSuite } from './backend.suite.ts';

const FAKE_CONDOR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/fake-condor');
const resources = { cores: 1, memoryMB: 200, wallTimeSec: 600, gpus: 0, wholeNode: false };
const l = lab();

backendSuite('local', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-local-ce-'));
  return {
    backend: new HostProcessBackend({
      type: 'local',
      runner: new LocalRunner(),
      workDir: dir,
      commandTimeoutMs: 20_000,
      cancelGraceSec: 5,
    }),
    queue: 'local',
    resources,
    unknownRef: 'never-issued-stamp',
    endWithinMs: 30_000,
    pollMs: 200,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

backendSuite('ssh', async () => ({
  backend: new HostProcessBackend({
    type: 'ssh',
    runner: new SshRunner(sshTarget(l)),
    workDir: `.pilothouse/conformance-${process.pid}`,
    commandTimeoutMs: 20_000,
    cancelGraceSec: 5,
  }),
  queue: 'ssh',
  resources,
  unknownRef: 'never-issued-stamp',
  endWithinMs: 30_000,
  pollMs: 300,
}));

backendSuite('slurm (here)', async () => ({
  backend: new SlurmBackend({
    runner: new LocalRunner(),
    outputDir: path.join(l.slurm.outputDir, `conformance-${process.pid}`),
    account: null,
    submitOptions: [],
    accounting: l.slurm.sacct,
    commandTimeoutMs: 20_000,
  }),
  queue: l.slurm.partition,
  resources,
  unknownRef: '9999999',
  endWithinMs: 90_000,
  pollMs: 1000,
}));

backendSuite('slurm over ssh', async () => ({
  backend: new SlurmBackend({
    runner: new SshRunner(sshTarget(l)),
    outputDir: `.pilothouse/slurm-conformance-${process.pid}`,
    account: null,
    submitOptions: [],
    accounting: l.slurm.sacct,
    commandTimeoutMs: 20_000,
  }),
  queue: l.slurm.partition,
  resources,
  unknownRef: '9999998',
  endWithinMs: 90_000,
  pollMs: 1000,
}));

backendSuite('htcondor (replica of the HTCondor 25 tools)', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-condor-'));
  process.env.FAKE_CONDOR_DIR = path.join(dir, 'schedd');
  process.env.PATH = `${FAKE_CONDOR}:${process.env.PATH ?? ''}`;
  return {
    backend: new HtcondorBackend({
      runner: new LocalRunner(),
      ceHost: 'ce.example.org',
      pool: 'ce.example.org:9619',
      mode: 'remote-schedd',
      tokenFile: null,
      workDir: path.join(dir, 'submit'),
      extraSubmit: [],
      commandTimeoutMs: 20_000,
    }),
    queue: 'default',
    resources,
    unknownRef: '999999.0',
    endWithinMs: 30_000,
    pollMs: 300,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

backendSuite('arc (A-REX REST)', async () => ({
  backend: new ArcBackend({
    url: l.arc.url,
    caFile: l.arc.ca,
    certFile: l.arc.cert,
    keyFile: l.arc.key,
    tokenFile: null,
    requestTimeoutMs: 30_000,
  }),
  queue: l.arc.queue,
  resources,
  unknownRef: 'NeverIssuedArcJobId000000000000000000000000000000000',
  endWithinMs: 150_000,
  pollMs: 3000,
}));
