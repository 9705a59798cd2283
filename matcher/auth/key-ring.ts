/**
 * The matcher's signing keys, kept in `<dataDir>/keys/` as one JSON file per key (Ed25519 JWK).
 *
 * Life of a key:
 *  - **signing**: the newest key that is neither retiring nor revoked signs new tokens;
 *  - **retiring**: after a rotation, every older key gets a recorded `retireAtMs` = rotation time +
 *    the longest lifetime a token it signed may have (`maxTokenTtlSec`, recorded in the key when it
 *    was created) + clock skew. It keeps verifying until then, and is deleted afterwards;
 *  - **revoked**: stops verifying at once. Its private half is erased; a public tombstone stays until
 *    its tokens would have expired, so that they are refused as TOKEN_REVOKED (not merely unknown).
 *
 * Several processes share the directory (the server, `pilothouse token rotate-key|revoke`). Every
 * change is a whole-file atomic write (temp file + rename), so readers never see half a key, and the
 * directory's mtime/ctime change. `refresh()` compares them with one stat() and reloads when they
 * moved: the server calls it before every verification, so a key revoked by the CLI is refused on
 * the very next request. `reload()` (the server's maintenance tick) reloads unconditionally, for
 * filesystems with coarse timestamps.
 */
import { hkdfSync, randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import { PilothouseError } from '../../shared/errors.ts';
import type { Clock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/logger.ts';

export const SIGNING_ALGORITHM = 'EdDSA';
/** Added to every retire time: tokens signed by a process whose clock runs a little ahead. */
export const KEY_RETIRE_SKEW_MS = 5 * 60_000;
const KEY_FILE_SUFFIX = '.jwk.json';

export type KeyStatus = 'signing' | 'retiring' | 'revoked';

export interface KeyInfo {
  kid: string;
  status: KeyStatus;
  createdAtMs: number;
  maxTokenTtlSec: number;
  /** Retiring and revoked keys: when the file is deleted (every token it signed has expired by then). */
  retireAtMs: number | null;
  revokedAtMs: number | null;
}

export interface VerifyingKey {
  kid: string;
  maxTokenTtlSec: number;
  publicKey: CryptoKey;
  /**
   * HMAC secret for job tokens, derived from this key's private half (HKDF): a job token is minted per
   * match and only ever verified by the matchers that hold this key, so it is signed HS256 (≈2 µs)
   * rather than EdDSA (≈35 µs). It shares the key's rotation and revocation; null once the private
   * half is gone (revoked), so such tokens stop verifying with it.
   */
  jobTokenSecret: Buffer | null;
}

export interface SigningKey extends VerifyingKey {
  privateKey: CryptoKey;
}

export type KeyLookup = { status: 'active'; key: VerifyingKey } | { status: 'revoked' } | { status: 'unknown' };

interface StoredKey {
  kid: string;
  createdAtMs: number;
  maxTokenTtlSec: number;
  /** Private JWK while the key may sign; only the public half once revoked. */
  jwk: JWK;
  retireAtMs?: number;
  revokedAtMs?: number;
  revokedBy?: string;
}

interface LoadedKey {
  stored: StoredKey;
  publicKey: CryptoKey;
  privateKey: CryptoKey | null;
  jobTokenSecret: Buffer | null;
  publicJwk: JWK;
}

export interface KeyRingOptions {
  dataDir: string;
  clock: Clock;
  /** Recorded in keys this ring creates: the longest token lifetime they sign (and so their retire delay). */
  maxTokenTtlSec: number;
  logger?: Logger | undefined;
}

export class KeyRing {
  readonly #dir: string;
  readonly #clock: Clock;
  readonly #maxTokenTtlSec: number;
  readonly #logger: Logger | undefined;
  #keys: LoadedKey[] = [];
  #dirStamp = '';
  #loading: Promise<void> | null = null;

  private constructor(options: KeyRingOptions) {
    this.#dir = path.join(options.dataDir, 'keys');
    this.#clock = options.clock;
    this.#maxTokenTtlSec = options.maxTokenTtlSec;
    this.#logger = options.logger;
  }

  /** Opens (creating) the keys directory; makes a first signing key when none can sign. */
  static async open(options: KeyRingOptions): Promise<KeyRing> {
    const ring = new KeyRing(options);
    await mkdir(ring.#dir, { recursive: true, mode: 0o700 });
    const mode = (await stat(ring.#dir)).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      await chmod(ring.#dir, 0o700);
      ring.#logger?.warn({ dir: ring.#dir, mode: mode.toString(8) }, 'keys directory was readable by others: now 0700');
    }
    await ring.reload();
    if (!ring.#signingKey()) await ring.rotate();
    return ring;
  }

  get maxTokenTtlSec(): number {
    return this.#maxTokenTtlSec;
  }

  /** The key that signs new tokens. */
  signer(): SigningKey {
    const key = this.#signingKey();
    if (!key?.privateKey) throw new PilothouseError('INTERNAL', 'no signing key: every key is revoked or retiring');
    return {
      kid: key.stored.kid,
      maxTokenTtlSec: key.stored.maxTokenTtlSec,
      publicKey: key.publicKey,
      privateKey: key.privateKey,
      jobTokenSecret: key.jobTokenSecret,
    };
  }

  lookup(kid: string): KeyLookup {
    const key = this.#keys.find((k) => k.stored.kid === kid);
    if (!key || this.#isPastRetirement(key)) return { status: 'unknown' };
    if (key.stored.revokedAtMs !== undefined) return { status: 'revoked' };
    return {
      status: 'active',
      key: {
        kid,
        maxTokenTtlSec: key.stored.maxTokenTtlSec,
        publicKey: key.publicKey,
        jobTokenSecret: key.jobTokenSecret,
      },
    };
  }

  /** The public halves of every key that still verifies: `/.well-known/jwks.json`. */
  publicJwks(): { keys: JWK[] } {
    return {
      keys: this.#keys
        .filter((k) => k.stored.revokedAtMs === undefined && !this.#isPastRetirement(k))
        .map((k) => k.publicJwk),
    };
  }

  list(): KeyInfo[] {
    const signing = this.#signingKey();
    return this.#keys.map((k) => ({
      kid: k.stored.kid,
      status: k.stored.revokedAtMs !== undefined ? 'revoked' : k === signing ? 'signing' : 'retiring',
      createdAtMs: k.stored.createdAtMs,
      maxTokenTtlSec: k.stored.maxTokenTtlSec,
      retireAtMs: k.stored.retireAtMs ?? null,
      revokedAtMs: k.stored.revokedAtMs ?? null,
    }));
  }

  /** Reloads when another process (or this one) changed the directory since the last load: one stat(). */
  async refresh(): Promise<void> {
    if (this.#loading) return this.#loading;
    if (this.#readDirStamp() === this.#dirStamp) return;
    return this.reload();
  }

  /** Reloads every key file. Concurrent calls share one load. */
  reload(): Promise<void> {
    this.#loading ??= this.#load().finally(() => {
      this.#loading = null;
    });
    return this.#loading;
  }

  /**
   * Adds a new signing key; every older key that may still sign becomes retiring, with its retire
   * time recorded in its file.
   */
  async rotate(): Promise<KeyInfo> {
    await this.reload();
    const { privateKey } = await generateKeyPair(SIGNING_ALGORITHM, { crv: 'Ed25519', extractable: true });
    const createdAtMs = this.#clock.nowMs();
    // Sortable: creation time first, so that file order is age order.
    const kid = `${createdAtMs.toString(36).padStart(10, '0')}-${randomUUID().slice(0, 8)}`;
    const stored: StoredKey = {
      kid,
      createdAtMs,
      maxTokenTtlSec: this.#maxTokenTtlSec,
      jwk: await exportJWK(privateKey),
    };
    await this.#write(stored);
    for (const old of this.#keys) {
      if (old.stored.revokedAtMs !== undefined || old.stored.retireAtMs !== undefined) continue;
      const retireAtMs = createdAtMs + old.stored.maxTokenTtlSec * 1000 + KEY_RETIRE_SKEW_MS;
      await this.#write({ ...old.stored, retireAtMs });
    }
    await this.reload();
    this.#logger?.info({ kid }, 'signing key rotated');
    return this.#info(kid);
  }

  /**
   * Revokes a key: it stops verifying at once (in every process that refreshes), and its private half
   * is erased. Revoking the signing key first rotates, so that there is always a key to sign with.
   */
  async revoke(kid: string, revokedBy: string): Promise<{ revoked: KeyInfo; newSigner: KeyInfo | null }> {
    await this.reload();
    const key = this.#keys.find((k) => k.stored.kid === kid);
    if (!key) throw new PilothouseError('CONFIG_INVALID', `no key ${kid} in ${this.#dir}`, { field: 'key' });
    if (key.stored.revokedAtMs !== undefined) return { revoked: this.#info(kid), newSigner: null };
    const newSigner = key === this.#signingKey() ? await this.rotate() : null;
    const nowMs = this.#clock.nowMs();
    const { d: _erased, ...publicJwk } = key.stored.jwk;
    await this.#write({
      ...key.stored,
      jwk: publicJwk,
      revokedAtMs: nowMs,
      revokedBy,
      retireAtMs: nowMs + key.stored.maxTokenTtlSec * 1000 + KEY_RETIRE_SKEW_MS,
    });
    await this.reload();
    this.#logger?.warn({ kid, revokedBy }, 'signing key revoked');
    return { revoked: this.#info(kid), newSigner };
  }

  /**
   * Housekeeping (the server's maintenance tick): reload, delete keys past their retire time, rotate
   * when the signing key is older than `rotationAgeMs`, and make a key if none can sign.
   */
  async maintain(rotationAgeMs: number | null): Promise<{ rotated: KeyInfo | null; dropped: string[] }> {
    await this.reload();
    const dropped: string[] = [];
    for (const key of this.#keys.filter((k) => this.#isPastRetirement(k))) {
      await unlink(this.#file(key.stored.kid)).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
      dropped.push(key.stored.kid);
      this.#logger?.info({ kid: key.stored.kid }, 'retired key dropped');
    }
    if (dropped.length > 0) await this.reload();
    const signing = this.#signingKey();
    let rotated: KeyInfo | null = null;
    if (!signing || (rotationAgeMs !== null && this.#clock.nowMs() - signing.stored.createdAtMs >= rotationAgeMs)) {
      rotated = await this.rotate();
    }
    return { rotated, dropped };
  }

  #signingKey(): LoadedKey | undefined {
    for (let i = this.#keys.length - 1; i >= 0; i -= 1) {
      const key = this.#keys[i] as LoadedKey;
      if (key.privateKey && key.stored.revokedAtMs === undefined && key.stored.retireAtMs === undefined) return key;
    }
    return undefined;
  }

  #isPastRetirement(key: LoadedKey): boolean {
    return key.stored.retireAtMs !== undefined && this.#clock.nowMs() >= key.stored.retireAtMs;
  }

  #info(kid: string): KeyInfo {
    const info = this.list().find((k) => k.kid === kid);
    if (!info) throw new PilothouseError('INTERNAL', `key ${kid} vanished from ${this.#dir}`);
    return info;
  }

  #file(kid: string): string {
    return path.join(this.#dir, `${kid}${KEY_FILE_SUFFIX}`);
  }

  #readDirStamp(): string {
    try {
      const s = statSync(this.#dir, { bigint: true });
      return `${s.mtimeNs}:${s.ctimeNs}:${s.ino}`;
    } catch {
      return 'missing';
    }
  }

  async #load(): Promise<void> {
    const stamp = this.#readDirStamp();
    const names = (await readdir(this.#dir)).filter((n) => n.endsWith(KEY_FILE_SUFFIX)).sort();
    const keys: LoadedKey[] = [];
    for (const name of names) {
      let stored: StoredKey;
      try {
        stored = parseStoredKey(JSON.parse(await readFile(path.join(this.#dir, name), 'utf8')));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue; // dropped meanwhile
        this.#logger?.error({ file: name, err: error }, 'unreadable key file skipped');
        continue;
      }
      keys.push(await loadKey(stored));
    }
    keys.sort((a, b) => a.stored.createdAtMs - b.stored.createdAtMs || a.stored.kid.localeCompare(b.stored.kid));
    this.#keys = keys;
    this.#dirStamp = stamp;
  }

  /** Atomic whole-file write: a reader sees the old file or the new one, never a mix. */
  async #write(stored: StoredKey): Promise<void> {
    const target = this.#file(stored.kid);
    const temp = path.join(this.#dir, `.${stored.kid}.${randomUUID().slice(0, 8)}.tmp`);
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(JSON.stringify(stored));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
  }
}

function parseStoredKey(value: unknown): StoredKey {
  const v = value as Partial<StoredKey> | null;
  if (
    !v ||
    typeof v.kid !== 'string' ||
    typeof v.createdAtMs !== 'number' ||
    typeof v.jwk !== 'object' ||
    v.jwk === null ||
    v.jwk.crv !== 'Ed25519'
  ) {
    throw new Error('not a Pilothouse key file');
  }
  // Keys written before rotation existed carry no limit: assume the longest token they could sign.
  return { ...v, maxTokenTtlSec: typeof v.maxTokenTtlSec === 'number' ? v.maxTokenTtlSec : 365 * 86_400 } as StoredKey;
}

async function loadKey(stored: StoredKey): Promise<LoadedKey> {
  const { d, ...publicPart } = stored.jwk;
  const publicKey = (await importJWK({ ...publicPart, alg: SIGNING_ALGORITHM }, SIGNING_ALGORITHM)) as CryptoKey;
  const privateKey =
    d === undefined || stored.revokedAtMs !== undefined
      ? null
      : ((await importJWK({ ...stored.jwk, alg: SIGNING_ALGORITHM }, SIGNING_ALGORITHM)) as CryptoKey);
  return {
    stored,
    publicKey,
    privateKey,
    jobTokenSecret:
      privateKey === null || d === undefined
        ? null
        : Buffer.from(hkdfSync('sha256', Buffer.from(d, 'base64url'), Buffer.alloc(0), 'pilothouse job tokens v1', 32)),
    publicJwk: { ...publicPart, kid: stored.kid, alg: SIGNING_ALGORITHM, use: 'sig' },
  };
}
