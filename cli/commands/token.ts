/**
 * `pilothouse token issue|rotate-key|revoke|keys`: offline administration on the matcher's data
 * directory (its keys and its database). A running matcher on the same directory notices rotations
 * and revocations on its next request: it re-checks the keys directory before each verification and
 * looks every token id up in the revoked list.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Command, Option } from 'commander';
import { PilothouseError } from '../../shared/errors.ts';
import { systemClock } from '../../shared/clock.ts';
import { PROPERTIES, type Property } from '../../shared/auth/claims.ts';
import { DEFAULT_MAX_TOKEN_TTL_SEC } from '../../matcher/config.ts';
import { KeyRing, type KeyInfo } from '../../matcher/auth/key-ring.ts';
import { TokenService, tokenIdOf } from '../../matcher/auth/tokens.ts';
import { parseStoreLocation } from '../../matcher/store/location.ts';
import { openCredentialStoreAt } from '../../matcher/store/open-stores.ts';
import { printJson, table } from '../format.ts';

/** User tokens are access tokens: short by default (DiracX: 20 min); ask for more with --ttl-sec. */
export const DEFAULT_USER_TOKEN_TTL_SEC = 3_600;
/** Generic pilot tokens minted by hand: a pilot needs its token again at every reconnect. */
export const DEFAULT_PILOT_TOKEN_TTL_SEC = 86_400;

function openRing(dataDir: string): Promise<KeyRing> {
  return KeyRing.open({
    dataDir: path.resolve(dataDir),
    clock: systemClock,
    maxTokenTtlSec: DEFAULT_MAX_TOKEN_TTL_SEC,
  });
}

function positiveInteger(value: string, field: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) {
    throw new PilothouseError('CONFIG_INVALID', `--${field} must be a positive integer`, { field });
  }
  return n;
}

const iso = (ms: number | null): string => (ms === null ? '' : new Date(ms).toISOString());

function keyRows(keys: KeyInfo[]): string[][] {
  return keys.map((k) => [k.kid, k.status, iso(k.createdAtMs), iso(k.retireAtMs), iso(k.revokedAtMs)]);
}

interface IssueOptions {
  dataDir: string;
  kind: 'user' | 'pilot';
  vo: string;
  group?: string;
  user?: string;
  site: string;
  stamp?: string;
  properties?: string;
  ttlSec?: string;
}

function issueCommand(): Command {
  return new Command('issue')
    .description('mint a token with the signing key of a data directory and print it')
    .requiredOption('--data-dir <dir>', "the matcher's data directory")
    .addOption(new Option('--kind <kind>', 'token kind').choices(['user', 'pilot']).default('user'))
    .requiredOption('--vo <vo>', 'virtual organisation')
    .option('--group <group>', 'group (default: <vo>_user, or <vo>_pilot for pilots)')
    .option('--user <name>', 'user name (user tokens)')
    .option('--site <site>', "site a pilot token is bound to ('*' = any)", '*')
    .option('--stamp <id>', 'bind a pilot token to this one pilot stamp')
    .option('--properties <list>', `comma-separated properties (${PROPERTIES.join(', ')})`)
    .option(
      '--ttl-sec <n>',
      `lifetime in seconds (default ${DEFAULT_USER_TOKEN_TTL_SEC} for users, ${DEFAULT_PILOT_TOKEN_TTL_SEC} for pilots)`,
    )
    .action(async (options: IssueOptions) => {
      const ttlSec =
        options.ttlSec === undefined
          ? options.kind === 'user'
            ? DEFAULT_USER_TOKEN_TTL_SEC
            : DEFAULT_PILOT_TOKEN_TTL_SEC
          : positiveInteger(options.ttlSec, 'ttl-sec');
      if (options.kind === 'user' && !options.user)
        throw new PilothouseError('CONFIG_INVALID', 'user tokens need --user', { field: 'user' });
      if (options.kind === 'user' && options.stamp !== undefined)
        throw new PilothouseError('CONFIG_INVALID', '--stamp is for pilot tokens', { field: 'stamp' });
      const properties = (options.properties?.split(',').filter(Boolean) ??
        (options.kind === 'user' ? ['NormalUser'] : ['GenericPilot'])) as Property[];
      for (const property of properties) {
        if (!(PROPERTIES as readonly string[]).includes(property)) {
          throw new PilothouseError(
            'CONFIG_INVALID',
            `unknown property ${property} (known: ${PROPERTIES.join(', ')})`,
            { field: 'properties' },
          );
        }
      }
      const tokens = new TokenService({ keys: await openRing(options.dataDir), clock: systemClock });
      const token = await tokens.issue({
        kind: options.kind,
        subject: options.kind === 'user' ? (options.user as string) : (options.stamp ?? `pilots.${options.vo}`),
        vo: options.vo,
        group: options.group ?? `${options.vo}_${options.kind}`,
        properties,
        site: options.kind === 'pilot' ? options.site : undefined,
        pilotStamp: options.kind === 'pilot' ? options.stamp : undefined,
        ttlSec,
      });
      process.stdout.write(`${token}\n`);
    });
}

function rotateKeyCommand(): Command {
  return new Command('rotate-key')
    .description('make a new signing key; older keys keep verifying until the tokens they signed have expired')
    .requiredOption('--data-dir <dir>', "the matcher's data directory")
    .option('--json', 'print JSON for scripts', false)
    .action(async (options: { dataDir: string; json: boolean }) => {
      const ring = await openRing(options.dataDir);
      const signing = await ring.rotate();
      if (options.json) printJson({ signing, keys: ring.list() });
      else {
        process.stdout.write(`new signing key ${signing.kid}\n`);
        process.stdout.write(table(['KID', 'STATUS', 'CREATED', 'RETIRES', 'REVOKED'], keyRows(ring.list())) + '\n');
      }
    });
}

interface RevokeOptions {
  dataDir: string;
  db?: string;
  key?: string;
  tokenId?: string;
  tokenFile?: string;
  expiresAt?: string;
  reason: string;
  json: boolean;
}

function revokeCommand(): Command {
  return new Command('revoke')
    .description('revoke a signing key (every token it signed), or one token by id or by file; effective at once')
    .requiredOption('--data-dir <dir>', "the matcher's data directory")
    .option('--db <url>', 'the database: sqlite:PATH or postgres://USER@HOST:PORT/DB (default: DIR/pilothouse.sqlite)')
    .option('--key <kid>', 'revoke this signing key (see `token keys`)')
    .option('--token-id <jti>', "revoke the token with this id (its 'jti')")
    .option('--token-file <file>', 'revoke the token in this file')
    .option('--expires-at <iso>', 'with --token-id: when the token expires (default: the longest token life)')
    .option('--reason <text>', 'recorded with the revocation', 'revoked by an administrator')
    .option('--json', 'print JSON for scripts', false)
    .action(async (options: RevokeOptions) => {
      const chosen = [options.key, options.tokenId, options.tokenFile].filter((v) => v !== undefined);
      if (chosen.length !== 1) {
        throw new PilothouseError('CONFIG_INVALID', 'give exactly one of --key, --token-id, --token-file', {
          field: 'key',
        });
      }
      const revokedBy = `cli:${process.env.USER ?? 'unknown'}`;
      if (options.key !== undefined) {
        const ring = await openRing(options.dataDir);
        const { revoked, newSigner } = await ring.revoke(options.key, revokedBy);
        if (options.json) printJson({ revoked, newSigner });
        else {
          process.stdout.write(`key ${revoked.kid} revoked: every token it signed is refused from now on\n`);
          if (newSigner) process.stdout.write(`it was the signing key: new signing key ${newSigner.kid}\n`);
        }
        return;
      }
      let tokenId: string;
      let expiresAtMs: number;
      const fallbackMs = Date.now() + DEFAULT_MAX_TOKEN_TTL_SEC * 1000;
      if (options.tokenFile !== undefined) {
        let token: string;
        try {
          token = (await readFile(options.tokenFile, 'utf8')).trim();
        } catch (error) {
          throw new PilothouseError('CONFIG_INVALID', `cannot read ${options.tokenFile}: ${(error as Error).message}`, {
            field: 'tokenFile',
          });
        }
        const id = tokenIdOf(token);
        tokenId = id.tokenId;
        expiresAtMs = id.expiresAtMs ?? fallbackMs;
      } else {
        tokenId = options.tokenId as string;
        expiresAtMs = options.expiresAt === undefined ? fallbackMs : Date.parse(options.expiresAt);
        if (Number.isNaN(expiresAtMs)) {
          throw new PilothouseError('CONFIG_INVALID', '--expires-at must be an ISO date', { field: 'expiresAt' });
        }
      }
      const store = await openCredentialStoreAt(parseStoreLocation(options.db, options.dataDir));
      try {
        const created = await store.revokeToken({
          tokenId,
          expiresAtMs,
          reason: options.reason,
          revokedBy,
          atMs: Date.now(),
        });
        if (options.json) printJson({ tokenId, revoked: true, alreadyRevoked: !created, keptUntil: iso(expiresAtMs) });
        else process.stdout.write(`token ${tokenId} revoked${created ? '' : ' (it already was)'}\n`);
      } finally {
        await store.close();
      }
    });
}

function keysCommand(): Command {
  return new Command('keys')
    .description('list the signing keys of a data directory: signing, retiring (with retire time), revoked')
    .requiredOption('--data-dir <dir>', "the matcher's data directory")
    .option('--json', 'print JSON for scripts', false)
    .action(async (options: { dataDir: string; json: boolean }) => {
      const ring = await openRing(options.dataDir);
      if (options.json) printJson({ keys: ring.list() });
      else process.stdout.write(table(['KID', 'STATUS', 'CREATED', 'RETIRES', 'REVOKED'], keyRows(ring.list())) + '\n');
    });
}

export function tokenCommand(): Command {
  return new Command('token')
    .description('manage tokens and signing keys (offline, on the data directory)')
    .addCommand(issueCommand())
    .addCommand(rotateKeyCommand())
    .addCommand(revokeCommand())
    .addCommand(keysCommand());
}
