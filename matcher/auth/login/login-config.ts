/**
 * What `oidc.json` says about user login. Per issuer, an optional `login` block makes the matcher a
 * client of that identity provider (its users sign in there; the matcher then issues its own tokens):
 *   "login": { "clientId": "pilothouse", "clientSecretFile": "/etc/pilothouse/idp-secret",
 *              "scopes": ["openid", "profile", "email"] }
 * At the top level, an optional `login` block sets the lifetimes the matcher grants:
 *   "login": { "accessTokenTtlSec": 1200, "refreshTokenTtlSec": 28800, "maxSessionSec": 604800,
 *              "deviceCodeTtlSec": 600, "pollIntervalSec": 5 }
 * The IdP must accept `<public URL>/api/auth/callback` as a redirect URI of that client.
 */
import { z } from 'zod';

export const DEFAULT_LOGIN_SCOPES = ['openid', 'profile', 'email'];

export const loginClientSchema = z.strictObject({
  clientId: z.string().min(1).max(256),
  /** A file holding the client secret (confidential clients); absent: a public client (PKCE only). */
  clientSecretFile: z.string().min(1).optional(),
  scopes: z.array(z.string().min(1)).min(1).default(DEFAULT_LOGIN_SCOPES),
});

export const loginSettingsSchema = z.strictObject({
  /** Lifetime of the access tokens the matcher issues to signed-in users (DiracX uses 20 min). */
  accessTokenTtlSec: z
    .int()
    .min(60)
    .max(86_400)
    .default(20 * 60),
  /** A refresh token not used within this long expires. */
  refreshTokenTtlSec: z
    .int()
    .min(300)
    .max(30 * 86_400)
    .default(8 * 3_600),
  /** No refresh token outlives the sign-in by more than this: then the user signs in again. */
  maxSessionSec: z
    .int()
    .min(3_600)
    .max(90 * 86_400)
    .default(7 * 86_400),
  /** How long a device code (and its user code) waits for the user (RFC 8628 `expires_in`). */
  deviceCodeTtlSec: z.int().min(60).max(3_600).default(600),
  /** The least time between two polls of a device code (RFC 8628 `interval`; 5 s is its default). */
  pollIntervalSec: z.int().min(1).max(60).default(5),
  /** How long a trip to the identity provider, and an authorization code, may take. */
  signInTtlSec: z.int().min(60).max(3_600).default(600),
});

export type LoginClientConfig = z.output<typeof loginClientSchema> & { clientSecret: string | null };
export type LoginSettings = z.output<typeof loginSettingsSchema>;
export const DEFAULT_LOGIN_SETTINGS: LoginSettings = loginSettingsSchema.parse({});
