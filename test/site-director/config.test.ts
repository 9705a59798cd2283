/** The site-director configuration: defaults and inheritance, and errors that name file, line and field. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PilothouseError } from '../../shared/errors.ts';
import { loadDirectorConfig, parseDirectorConfig } from '../../site-director/config/load.ts';

const minimal = `name: sd1
sites:
  - name: LCG.Example.org
    vos: [lhcb]
    ces:
      - name: ce01.example.org
        type: slurm
        tags: [cvmfs]
        maxWaitingPilots: 4
        queues:
          - name: long
            maxCores: 8
            memoryMB: 16000
            wallTimeSec: 172800
            tags: [mp]
            pilot: { coresPerPilot: 4 }
`;

function refusal(text: string, file = '/etc/pilothouse/sd.yaml'): PilothouseError {
  try {
    parseDirectorConfig(text, file, 'sd.yaml');
  } catch (error) {
    assert.ok(error instanceof PilothouseError);
    assert.equal(error.code, 'CONFIG_INVALID');
    return error;
  }
  assert.fail('the configuration was accepted');
}

it('config - a minimal file compiles with defaults, inheritance and units', () => {
  const config = parseDirectorConfig(minimal, '/etc/pilothouse/sd.yaml');
  assert.equal(config.name, 'sd1');
  assert.equal(config.schedule, '*/1 * * * *');
  assert.equal(config.ceTimeoutMs, 120_000);
  const [ce] = config.ces;
  assert.equal(ce?.key, 'LCG.Example.org/ce01.example.org');
  assert.deepEqual(ce?.backend, {
    type: 'slurm',
    outputDir: '/etc/pilothouse/.pilothouse/slurm',
    account: null,
    submitOptions: [],
    accounting: true,
    login: null,
  });
  const queue = ce?.queues[0];
  assert.deepEqual(queue?.vos, ['lhcb']);
  assert.equal(queue?.batchQueue, 'long');
  assert.deepEqual(queue?.slot.tags, ['cvmfs', 'mp'], 'tags are the union of CE and queue');
  assert.equal(queue?.slot.cores, 4);
  assert.deepEqual(queue?.caps, { maxWaitingPilots: 4, maxRunningPilots: 100, maxPilotsPerCycle: 10 });
  assert.equal(queue?.pilot.idleTimeoutSec, 300);
});

it('config - JSON is read too, with line numbers', () => {
  const json = JSON.stringify(
    {
      name: 'sd1',
      sites: [{ name: 'S', vos: ['v'], ces: [{ name: 'c', type: 'local', queues: [{ name: 'q', maxCores: 'two' }] }] }],
    },
    null,
    2,
  );
  const error = refusal(json);
  assert.match(error.message, /^sd\.yaml:\d+: sites\.0\.ces\.0\.queues\.0\.maxCores: /);
  assert.equal(error.details.line, json.split('\n').findIndex((line) => line.includes('"two"')) + 1);
});

it('config - an unknown key is refused at its line (a typo never drops a cap silently)', () => {
  const error = refusal(minimal.replace('maxWaitingPilots: 4', 'maxWaitingPilot: 4'));
  assert.match(error.message, /^sd\.yaml:9: sites\.0\.ces\.0\.maxWaitingPilot: /);
  assert.equal(error.details.field, 'sites.0.ces.0.maxWaitingPilot');
  assert.equal(error.details.file, 'sd.yaml');
});

it('config - a secret written inline is not a field: refused, and its value is not echoed', () => {
  const error = refusal(minimal.replace('type: slurm', 'type: slurm\n        password: hunter2'));
  assert.match(error.message, /password/);
  assert.doesNotMatch(error.message, /hunter2/);
});

it('config - wrong types, missing VOs, impossible pilots and bad schedules name the field', () => {
  assert.match(
    refusal(minimal.replace('maxCores: 8', 'maxCores: -1')).message,
    /sd\.yaml:12: sites\.0\.ces\.0\.queues\.0\.maxCores: /,
  );
  assert.match(refusal(minimal.replace('    vos: [lhcb]\n', '')).message, /sites\.0\.ces\.0\.queues\.0\.vos: no VO/);
  assert.match(
    refusal(minimal.replace('coresPerPilot: 4', 'coresPerPilot: 16')).message,
    /pilot\.coresPerPilot: 16 cores per pilot is more than the queue's maxCores 8/,
  );
  assert.match(refusal(`${minimal}cycle: { schedule: 'every minute' }\n`).message, /cycle\.schedule/);
  assert.match(refusal(minimal.replace('type: slurm', 'type: pbs')).message, /sites\.0\.ces\.0\.type/);
  assert.match(refusal(minimal.replace('name: long', 'name: "long queue"')).message, /queues\.0\.name/);
});

it('config - names listed twice are refused', () => {
  const twice = minimal.replace(
    '          - name: long\n',
    '          - name: long\n            maxCores: 1\n          - name: long\n',
  );
  assert.match(refusal(twice).message, /queue long is listed twice/);
});

it('config - credential files must exist; ARC needs a certificate and key, or a token', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-sd-config-'));
  const ssh = minimal.replace(
    'type: slurm',
    'type: ssh\n        ssh: { host: login.example.org, keyFile: ./missing_key }',
  );
  assert.match(
    refusal(ssh, path.join(dir, 'sd.yaml')).message,
    /sites\.0\.ces\.0\.ssh\.keyFile: cannot read .*missing_key/,
  );
  await writeFile(path.join(dir, 'key'), 'not really a key');
  const file = path.join(dir, 'ok.yaml');
  await writeFile(file, ssh.replace('./missing_key', 'key'));
  const config = loadDirectorConfig(file);
  assert.equal(config.ces[0]?.backend.type === 'ssh' && config.ces[0].backend.target.keyFile, path.join(dir, 'key'));
  const arc = minimal.replace('type: slurm', 'type: arc\n        arc: { certFile: key }');
  assert.match(refusal(arc, path.join(dir, 'sd.yaml')).message, /arc\.keyFile: certFile and keyFile go together/);
  assert.match(
    refusal(minimal.replace('type: slurm', 'type: arc\n        arc: {}'), path.join(dir, 'sd.yaml')).message,
    /give the CE credentials/,
  );
});

it('config - YAML syntax errors and unreadable files are CONFIG_INVALID with the file name', () => {
  const error = refusal(`${minimal}  - name: [unclosed\n`);
  assert.match(error.message, /^sd\.yaml:\d+: /);
  assert.throws(() => loadDirectorConfig('/nonexistent/sd.yaml'), /\/nonexistent\/sd\.yaml: cannot read: ENOENT/);
});
