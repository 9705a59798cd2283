/**
 * The secrets of user login: device codes, authorization codes, refresh tokens and IdP `state`s are
 * 256 random bits, stored only as their sha256 (hashCredential, as pilot credentials); user codes are typed by people, so they come from an
 * alphabet without vowels or look-alike characters (RFC 8628 §6.1: 20^8 ≈ 2^34.6 codes, and each
 * lives ten minutes).
 */
import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';

export const DEVICE_CODE_PREFIX = 'phd_';
export const AUTHORIZATION_CODE_PREFIX = 'phc_';
export const REFRESH_TOKEN_PREFIX = 'phr_';
const USER_CODE_ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ';
const USER_CODE_LENGTH = 8;

export function randomSecret(prefix = ''): string {
  return prefix + randomBytes(32).toString('base64url');
}

/** `WDJB-MJHT`: shown to the user with a dash, stored without it. */
export function newUserCode(): { shown: string; stored: string } {
  let stored = '';
  for (let i = 0; i < USER_CODE_LENGTH; i += 1) stored += USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)];
  return { shown: `${stored.slice(0, 4)}-${stored.slice(4)}`, stored };
}

/** What the user typed, as stored: case, dashes and spaces do not matter. */
export function normalizeUserCode(typed: string): string {
  return typed.toUpperCase().replace(/[\s-]/g, '');
}

/** RFC 7636 §4.6: BASE64URL(SHA256(verifier)) must equal the challenge (compared in constant time). */
export function pkceMatches(verifier: string, challenge: string): boolean {
  if (!/^[A-Za-z0-9._~-]{43,128}$/.test(verifier)) return false;
  const computed = Buffer.from(createHash('sha256').update(verifier).digest('base64url'));
  const expected = Buffer.from(challenge);
  return computed.length === expected.length && timingSafeEqual(computed, expected);
}
