/**
 * What a token says about its bearer. Pilothouse tokens are JWTs signed by the matcher (jose);
 * `kind` decides which routes accept them: user tokens act on jobs, pilot tokens pull work,
 * job tokens report on exactly one attempt of one job. Tokens of a trusted external OIDC issuer are
 * mapped to user principals (VO, group, properties from the issuer's configured mapping).
 */
export const TOKEN_KINDS = ['user', 'pilot', 'job'] as const;
export type TokenKind = (typeof TOKEN_KINDS)[number];

export const PROPERTIES = [
  'NormalUser',
  'JobAdministrator',
  'ServiceAdministrator',
  'GenericPilot',
  'JobSharing',
] as const;
export type Property = (typeof PROPERTIES)[number];

export interface Principal {
  kind: TokenKind;
  /** `sub` of the token: the user name, the pilot stamp (or `pilots.<vo>`), or `job:<id>:<attempt>`. */
  subject: string;
  vo: string;
  group: string;
  properties: Property[];
  /** Pilot tokens: the site the pilot is bound to ('*' = any, generic pilot tokens only). */
  site?: string;
  /** Pilot tokens obtained by exchanging a pilot secret: the one pilot (stamp) they are bound to. */
  pilotStamp?: string;
  /** Job tokens: the job and attempt they are bound to. */
  jobId?: number;
  attempt?: number;
  /** `iss`: TOKEN_ISSUER for tokens of this matcher, else the external issuer. */
  issuer: string;
  /** Matcher tokens: the signing key (`kid`), so that revoking the key reaches established sessions. */
  keyId?: string;
  /** `jti` (external tokens without one: a digest of the token). Revocable with `token revoke --token-id`. */
  tokenId: string;
  expiresAtMs: number;
}

export const TOKEN_ISSUER = 'pilothouse';
