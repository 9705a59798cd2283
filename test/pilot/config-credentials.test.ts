/** The pilot's --secret-file and --ca-file options: compiled once, every mistake named. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PilothouseError } from '../../shared/errors.ts';
import { compilePilotConfig, type RawPilotOptions } from '../../pilot/config.ts';

function refusal(raw: RawPilotOptions, env: NodeJS.ProcessEnv = {}): string {
  try {
    compilePilotConfig(raw, env);
  } catch (error) {
    assert.ok(error instanceof PilothouseError);
    assert.equal(error.code, 'CONFIG_INVALID');
    return error.message;
  }
  assert.fail('expected CONFIG_INVALID');
}

test('--secret-file: read once, needs the stamp it is bound to, excludes --token-file', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ph-pilot-cfg-'));
  const secretFile = path.join(dir, 'secret');
  await writeFile(secretFile, 'phps_abc\n');
  const config = compilePilotConfig({ matcher: 'https://m', secretFile, stamp: 'p1' }, { PILOTHOUSE_TOKEN: 'ignored' });
  assert.equal(config.pilotSecret, 'phps_abc');
  assert.equal(config.pilotToken, null);
  const fromEnvStamp = compilePilotConfig({ matcher: 'https://m', secretFile }, { PILOTHOUSE_PILOT_STAMP: 'p2' });
  assert.equal(fromEnvStamp.pilotStamp, 'p2');

  assert.match(refusal({ matcher: 'https://m', secretFile }), /^--secret-file: .*--stamp/);
  assert.match(
    refusal({ matcher: 'https://m', secretFile, tokenFile: secretFile, stamp: 'p1' }),
    /^--secret-file: give --token-file or --secret-file, not both/,
  );
  assert.match(
    refusal({ matcher: 'https://m', secretFile: '/nonexistent', stamp: 'p1' }),
    /^--secret-file: cannot read/,
  );
  const twoWords = path.join(dir, 'two');
  await writeFile(twoWords, 'a b');
  assert.match(refusal({ matcher: 'https://m', secretFile: twoWords, stamp: 'p1' }), /one secret/);
});

test('--ca-file: a PEM bundle, else a named refusal', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ph-pilot-cfg-'));
  const good = path.join(dir, 'ca.pem');
  await writeFile(good, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  const env = { PILOTHOUSE_TOKEN: 'tok' };
  assert.match(compilePilotConfig({ matcher: 'https://m', caFile: good }, env).caPem ?? '', /BEGIN CERTIFICATE/);
  assert.equal(compilePilotConfig({ matcher: 'https://m' }, env).caPem, null);
  const bad = path.join(dir, 'bad.pem');
  await writeFile(bad, 'not a certificate');
  assert.match(refusal({ matcher: 'https://m', caFile: bad }, env), /^--ca-file: .* holds no PEM certificate/);
  assert.match(refusal({ matcher: 'https://m', caFile: '/nonexistent' }, env), /^--ca-file: cannot read/);
});
