import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PilothouseError } from '../../shared/errors.ts';
import { compilePilotConfig, type RawPilotOptions } from '../../pilot/config.ts';

const env = { PILOTHOUSE_TOKEN: 'tok' };

function refusal(raw: RawPilotOptions, environment: NodeJS.ProcessEnv = env): PilothouseError {
  try {
    compilePilotConfig(raw, environment);
  } catch (error) {
    assert.ok(error instanceof PilothouseError);
    assert.equal(error.code, 'CONFIG_INVALID');
    return error;
  }
  assert.fail('expected CONFIG_INVALID');
}

test('defaults, units and the derived WebSocket URL', () => {
  const config = compilePilotConfig({ matcher: 'http://matcher:8080/' }, env, '/srv');
  assert.equal(config.matcherUrl, 'http://matcher:8080');
  assert.equal(config.connectUrl, 'ws://matcher:8080/api/pilots/connect');
  assert.equal(config.pilotToken, 'tok');
  assert.equal(config.site, 'Local.localhost');
  assert.equal(config.ce, null);
  assert.equal(config.workdir, '/srv/pilothouse-work');
  assert.equal(config.idleTimeoutMs, 300_000);
  assert.equal(config.wallTimeSec, null);
  assert.match(config.pilotStamp, /^[0-9a-f]{32}$/);
  assert.equal(config.logLevel, 'info');
});

test('https becomes wss and a path prefix is kept', () => {
  const config = compilePilotConfig({ matcher: 'https://example.org/pilothouse' }, env);
  assert.equal(config.connectUrl, 'wss://example.org/pilothouse/api/pilots/connect');
  assert.equal(config.matcherUrl, 'https://example.org/pilothouse');
});

test('flags are parsed with their units', () => {
  const config = compilePilotConfig(
    {
      matcher: 'http://m',
      cores: '4',
      memoryMb: '2048',
      wallTimeSec: '3600',
      idleTimeoutSec: '10',
      tags: 'a, b,a',
      ce: 'ce1.example.org',
      queue: 'long',
      stamp: 'st-1',
      keepWorkdirs: true,
      logLevel: 'debug',
    },
    { PILOTHOUSE_TOKEN: 'tok', PILOTHOUSE_PILOT_STAMP: 'ignored' },
  );
  assert.equal(config.coresLimit, 4);
  assert.equal(config.memoryMBLimit, 2048);
  assert.equal(config.wallTimeSec, 3600);
  assert.equal(config.idleTimeoutMs, 10_000);
  assert.deepEqual(config.tags, ['a', 'b']);
  assert.equal(config.pilotStamp, 'st-1');
  assert.equal(config.keepWorkdirs, true);
  assert.equal(config.logLevel, 'debug');
});

test('the token file wins over the environment and is trimmed; the stamp may come from the environment', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'pilot-config-'));
  const file = path.join(dir, 'token');
  await writeFile(file, 'from-file\n');
  const config = compilePilotConfig(
    { matcher: 'http://m', tokenFile: file },
    { PILOTHOUSE_TOKEN: 'env', PILOTHOUSE_PILOT_STAMP: 'stamp.9' },
  );
  assert.equal(config.pilotToken, 'from-file');
  assert.equal(config.pilotStamp, 'stamp.9');
});

test('refusals name the flag', () => {
  assert.match(refusal({}).message, /^--matcher: .*required/);
  assert.match(refusal({ matcher: 'not a url' }).message, /^--matcher: /);
  assert.match(refusal({ matcher: 'ws://m' }).message, /http:\/\/ or https:\/\//);
  assert.match(refusal({ matcher: 'http://u:p@m' }).message, /credentials/);
  assert.match(refusal({ matcher: 'http://m' }, {}).message, /^--token-file: no pilot token/);
  assert.match(refusal({ matcher: 'http://m', tokenFile: '/nonexistent/token' }).message, /^--token-file: cannot read/);
  assert.equal(refusal({ matcher: 'http://m', cores: '0' }).details.field, '--cores');
  assert.equal(refusal({ matcher: 'http://m', cores: '2.5' }).details.field, '--cores');
  assert.equal(refusal({ matcher: 'http://m', memoryMb: '-1' }).details.field, '--memory-mb');
  assert.equal(refusal({ matcher: 'http://m', wallTimeSec: 'soon' }).details.field, '--wall-time-sec');
  assert.equal(refusal({ matcher: 'http://m', idleTimeoutSec: '1e3' }).details.field, '--idle-timeout-sec');
  assert.equal(refusal({ matcher: 'http://m', stamp: 'has space' }).details.field, '--stamp');
  assert.equal(refusal({ matcher: 'http://m', site: '../etc' }).details.field, '--site');
  assert.equal(refusal({ matcher: 'http://m', tags: 'ok,b@d tag' }).details.field, '--tags');
  assert.equal(refusal({ matcher: 'http://m', logLevel: 'loud' }).details.field, '--log-level');
  assert.equal(refusal({ matcher: 'http://m', workdir: ' ' }).details.field, '--workdir');
});
