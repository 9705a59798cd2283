/**
 * External OIDC issuers the matcher trusts for user tokens (e.g. a VO's INDIGO IAM). Each issuer is
 * trusted through its JWKS URL (jose createRemoteJWKSet: fetched on first use, cached, re-fetched on
 * an unknown `kid`) and belongs to exactly one VO. Its tokens become user principals through a
 * configured, ordered mapping of the IdP's groups to a Pilothouse group and properties: the first
 * entry whose `idpGroup` the token holds wins ("*" matches any token of the issuer). A token that
 * maps to nothing is refused.
 *
 * The configuration is a JSON file (`<dataDir>/oidc.json` or `server --oidc-config FILE`), validated
 * once at start with errors that name the offending field:
 *
 * { "issuers": [ { "issuer": "https://iam.example.org/", "jwksUrl": "https://iam.example.org/jwk",
 *     "audience": "pilothouse", "vo": "lhcb", "userClaim": "sub", "groupsClaim": "groups",
 *     "groups": [ { "idpGroup": "/lhcb/admins", "group": "lhcb_admin", "properties": ["NormalUser", "JobAdministrator"] },
 *                 { "idpGroup": "/lhcb", "group": "lhcb_user", "properties": ["NormalUser"] } ] } ] }
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRemoteJWKSet, customFetch, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { Agent, fetch as undiciFetch } from 'undici';
import { z } from 'zod';
import { PilothouseError } from '../../shared/errors.ts';
import { PROPERTIES, TOKEN_ISSUER, type Principal, type Property } from '../../shared/auth/claims.ts';
import type { Clock } from '../../shared/clock.ts';
import {
  DEFAULT_LOGIN_SETTINGS,
  loginClientSchema,
  loginSettingsSchema,
  type LoginClientConfig,
  type LoginSettings,
} from './login/login-config.ts';

/** Asymmetric algorithms only: a shared-secret (HS*) token could be forged by anyone holding the JWKS. */
export const OIDC_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'EdDSA',
] as const;
export const DEFAULT_OIDC_CLOCK_TOLERANCE_SEC = 30;
export const DEFAULT_JWKS_TIMEOUT_MS = 5_000;

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}$/, 'letters, digits and _.:@+- (max 128)');
const httpUrl = z.url({ protocol: /^https?$/, error: 'an http(s) URL' });

const issuerSchema = z.strictObject({
  issuer: z
    .string()
    .min(1)
    .refine((v) => v !== TOKEN_ISSUER, `"${TOKEN_ISSUER}" is this matcher's own issuer`),
  jwksUrl: httpUrl,
  audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)], {
    error: 'the audience your IdP puts in "aud" for this matcher (a string or a list); it is always checked',
  }),
  vo: name,
  algorithms: z.array(z.enum(OIDC_ALGORITHMS)).min(1).default(['RS256', 'ES256', 'EdDSA']),
  userClaim: z.string().min(1).default('sub'),
  groupsClaim: z.string().min(1).default('groups'),
  groups: z
    .array(
      z.strictObject({
        idpGroup: z.string().min(1),
        group: name,
        properties: z
          .array(z.enum(PROPERTIES))
          .min(1)
          .refine((p) => !p.includes('GenericPilot'), 'GenericPilot belongs to pilot tokens, not to users'),
      }),
    )
    .min(1),
  /** A PEM bundle to verify the JWKS URL's TLS certificate (default: Node's roots). */
  caFile: z.string().min(1).optional(),
  clockToleranceSec: z.int().min(0).max(300).default(DEFAULT_OIDC_CLOCK_TOLERANCE_SEC),
  /** Users of this VO sign in at this issuer (see login/login-config.ts). */
  login: loginClientSchema.optional(),
});

const configSchema = z.strictObject({
  issuers: z.array(issuerSchema).min(1),
  login: loginSettingsSchema.default(DEFAULT_LOGIN_SETTINGS),
});

export type OidcIssuerConfig = Omit<z.output<typeof issuerSchema>, 'login'> & {
  caPem: string | null;
  login: LoginClientConfig | null;
};
export interface OidcConfig {
  issuers: OidcIssuerConfig[];
  login: LoginSettings;
}

/** Parses and validates an OIDC configuration; CONFIG_INVALID names the file and the field. */
export function parseOidcConfig(text: string, source: string): OidcConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new PilothouseError('CONFIG_INVALID', `${source}: not valid JSON: ${(error as Error).message}`, {
      field: 'oidc',
    });
  }
  const parsed = configSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const keys = issue?.code === 'unrecognized_keys' ? issue.keys : [];
    const field = [...(issue?.path ?? []), ...keys]
      .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
      .join('');
    throw new PilothouseError(
      'CONFIG_INVALID',
      `${source}: ${field || '(top level)'}: ${issue?.message ?? 'invalid'}`,
      {
        field: `oidc.${field}`,
      },
    );
  }
  const seen = new Set<string>();
  const issuers = parsed.data.issuers.map((issuer, index) => {
    if (seen.has(issuer.issuer)) {
      throw new PilothouseError(
        'CONFIG_INVALID',
        `${source}: issuers[${index}].issuer: ${issuer.issuer} is listed twice`,
        {
          field: `oidc.issuers[${index}].issuer`,
        },
      );
    }
    seen.add(issuer.issuer);
    let caPem: string | null = null;
    if (issuer.caFile !== undefined) {
      try {
        caPem = readFileSync(issuer.caFile, 'utf8');
      } catch (error) {
        throw new PilothouseError(
          'CONFIG_INVALID',
          `${source}: issuers[${index}].caFile: cannot read ${issuer.caFile}: ${(error as Error).message}`,
          { field: `oidc.issuers[${index}].caFile` },
        );
      }
    }
    let login: LoginClientConfig | null = null;
    if (issuer.login !== undefined) {
      let clientSecret: string | null = null;
      if (issuer.login.clientSecretFile !== undefined) {
        try {
          clientSecret = readFileSync(issuer.login.clientSecretFile, 'utf8').trim();
        } catch (error) {
          throw new PilothouseError(
            'CONFIG_INVALID',
            `${source}: issuers[${index}].login.clientSecretFile: cannot read ${issuer.login.clientSecretFile}: ${(error as Error).message}`,
            { field: `oidc.issuers[${index}].login.clientSecretFile` },
          );
        }
      }
      login = { ...issuer.login, clientSecret };
    }
    return { ...issuer, caPem, login };
  });
  return { issuers, login: parsed.data.login };
}

export function readOidcConfig(file: string): OidcConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new PilothouseError(
      'CONFIG_INVALID',
      `cannot read the OIDC configuration ${file}: ${(error as Error).message}`,
      {
        field: 'oidcConfig',
      },
    );
  }
  return parseOidcConfig(text, file);
}

interface TrustedIssuer {
  config: OidcIssuerConfig;
  jwks: ReturnType<typeof createRemoteJWKSet>;
}

export class OidcIssuers {
  readonly #issuers = new Map<string, TrustedIssuer>();
  readonly #clock: Clock;

  constructor(config: OidcConfig, clock: Clock, options: { jwksTimeoutMs?: number } = {}) {
    this.#clock = clock;
    for (const issuer of config.issuers) {
      const agent = issuer.caPem === null ? null : new Agent({ connect: { ca: issuer.caPem } });
      const jwks = createRemoteJWKSet(new URL(issuer.jwksUrl), {
        timeoutDuration: options.jwksTimeoutMs ?? DEFAULT_JWKS_TIMEOUT_MS,
        ...(agent && {
          [customFetch]: ((url: string, init: RequestInit) =>
            undiciFetch(url, { ...(init as object), dispatcher: agent })) as unknown as typeof fetch,
        }),
      });
      this.#issuers.set(issuer.issuer, { config: issuer, jwks });
    }
  }

  trusts(issuer: string): boolean {
    return this.#issuers.has(issuer);
  }

  get size(): number {
    return this.#issuers.size;
  }

  async verify(token: string, issuer: string): Promise<Principal> {
    const trusted = this.#issuers.get(issuer);
    if (!trusted)
      throw new PilothouseError('TOKEN_INVALID', 'the token was issued by an issuer this matcher does not trust');
    const { config } = trusted;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, trusted.jwks, {
        issuer: config.issuer,
        audience: config.audience,
        algorithms: [...config.algorithms],
        requiredClaims: ['exp', 'sub'],
        clockTolerance: config.clockToleranceSec,
        currentDate: new Date(this.#clock.nowMs()),
      }));
    } catch (error) {
      throw mapJoseError(error);
    }
    return mapClaims(config, payload, token);
  }
}

function mapJoseError(error: unknown): PilothouseError {
  if (error instanceof joseErrors.JWTExpired) return new PilothouseError('TOKEN_EXPIRED', 'the token has expired');
  if (
    error instanceof joseErrors.JWKSTimeout ||
    (error instanceof joseErrors.JOSEError && error.code === 'ERR_JOSE_GENERIC')
  ) {
    return new PilothouseError(
      'IDP_UNAVAILABLE',
      'the identity provider keys could not be fetched',
      {},
      { cause: error },
    );
  }
  if (error instanceof joseErrors.JOSEError) {
    const reason = error instanceof joseErrors.JWTClaimValidationFailed ? `: ${error.message}` : '';
    return new PilothouseError('TOKEN_INVALID', `the token is not valid${reason}`, {}, { cause: error });
  }
  // A network failure while fetching the JWKS (fetch throws a TypeError).
  return new PilothouseError(
    'IDP_UNAVAILABLE',
    'the identity provider keys could not be fetched',
    {},
    { cause: error },
  );
}

function claimValues(payload: Record<string, unknown>, claim: string): string[] {
  const value = payload[claim];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  if (typeof value === 'string') return value.split(/\s+/).filter(Boolean);
  return [];
}

/**
 * Who the claims name, in which group: the first mapping the claims hold, or the one of `wantedGroup`
 * (which they must hold). TOKEN_INVALID when no user claim or no mapped group; FORBIDDEN for a group
 * the user does not hold.
 */
export function identityFromClaims(
  config: OidcIssuerConfig,
  payload: Record<string, unknown>,
  wantedGroup?: string,
): { subject: string; vo: string; group: string; properties: Property[]; issuer: string } {
  const user = payload[config.userClaim];
  if (typeof user !== 'string' || user === '') {
    throw new PilothouseError('TOKEN_INVALID', `the token has no "${config.userClaim}" claim to name its user`);
  }
  const held = new Set(claimValues(payload, config.groupsClaim));
  const mappings = config.groups.filter((g) => g.idpGroup === '*' || held.has(g.idpGroup));
  if (mappings.length === 0) {
    throw new PilothouseError(
      'TOKEN_INVALID',
      `the token's "${config.groupsClaim}" claim holds no group mapped to VO ${config.vo}`,
    );
  }
  const mapping = wantedGroup === undefined ? mappings[0] : mappings.find((g) => g.group === wantedGroup);
  if (!mapping) {
    throw new PilothouseError(
      'FORBIDDEN',
      `${user} is not in group ${wantedGroup} of VO ${config.vo} (they may use: ${mappings.map((g) => g.group).join(', ')})`,
      { field: 'group' },
    );
  }
  return {
    subject: user,
    vo: config.vo,
    group: mapping.group,
    properties: [...mapping.properties],
    issuer: config.issuer,
  };
}

function mapClaims(config: OidcIssuerConfig, payload: JWTPayload, token: string): Principal {
  return {
    kind: 'user',
    ...identityFromClaims(config, payload),
    tokenId: externalTokenId(payload, token),
    expiresAtMs: (payload.exp as number) * 1000,
  };
}

/** The id `token revoke` uses for an external token: its `jti`, else a digest of the whole token. */
export function externalTokenId(payload: JWTPayload, token: string): string {
  if (typeof payload.jti === 'string' && payload.jti !== '') return `${payload.iss ?? ''}#${payload.jti}`;
  return `sha256:${createHash('sha256').update(token).digest('hex')}`;
}
