/**
 * Compact JWS signing on node:crypto, for the hot path: jose signs through WebCrypto (promise hops,
 * several times the cost). EdDSA for tokens anyone may verify with the JWKS; HS256 for job tokens,
 * minted once per match and verified only by the matchers holding the key. Verification stays with jose.
 */
import { KeyObject, createHmac, sign, type webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;

const keyObjects = new WeakMap<CryptoKey, KeyObject>();

function keyObjectOf(key: CryptoKey): KeyObject {
  let keyObject = keyObjects.get(key);
  if (!keyObject) {
    keyObject = KeyObject.from(key);
    keyObjects.set(key, keyObject);
  }
  return keyObject;
}

const base64url = (data: string | Buffer): string => Buffer.from(data).toString('base64url');

/** `header.payload.signature` with an Ed25519 key (header `alg` must be EdDSA). */
export function signCompactEdDsa(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  key: CryptoKey,
): string {
  const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}`;
  const signature = sign(null, Buffer.from(signingInput), keyObjectOf(key));
  return `${signingInput}.${base64url(signature)}`;
}

/** `header.payload.signature` with HMAC-SHA256 (header `alg` must be HS256). */
export function signCompactHs256(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  secret: Buffer,
): string {
  const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}`;
  return `${signingInput}.${createHmac('sha256', secret).update(signingInput).digest('base64url')}`;
}
