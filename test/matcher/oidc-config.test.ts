/** The OIDC configuration is validated once, with an error that names the file and the field. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { parseOidcConfig } from '../../matcher/auth/oidc.ts';
import { PilothouseError } from '../../shared/errors.ts';

const good = {
  issuer: 'https://iam.example.org/',
  jwksUrl: 'https://iam.example.org/jwk',
  audience: 'pilothouse',
  vo: 'lhcb',
  groups: [{ idpGroup: '/lhcb', group: 'lhcb_user', properties: ['NormalUser'] }],
};

function refusal(config: unknown): { message: string; field: unknown } {
  try {
    parseOidcConfig(typeof config === 'string' ? config : JSON.stringify(config), 'oidc.json');
  } catch (error) {
    assert.ok(error instanceof PilothouseError);
    assert.equal(error.code, 'CONFIG_INVALID');
    return { message: error.message, field: error.details.field };
  }
  throw new Error('the configuration should have been refused');
}

it('oidc config - a good configuration gets its defaults', () => {
  const config = parseOidcConfig(JSON.stringify({ issuers: [good] }), 'oidc.json');
  const [issuer] = config.issuers;
  assert.equal(issuer?.userClaim, 'sub');
  assert.equal(issuer?.groupsClaim, 'groups');
  assert.deepEqual(issuer?.algorithms, ['RS256', 'ES256', 'EdDSA']);
  assert.equal(issuer?.clockToleranceSec, 30);
});

it('oidc config - each mistake is named: file, field and what is wrong', () => {
  const { audience: _audience, ...noAudience } = good;
  const cases: [unknown, RegExp, string][] = [
    ['{ "issuers": [', /^oidc\.json: not valid JSON/, 'oidc'],
    [{}, /^oidc\.json: issuers: /, 'oidc.issuers'],
    [
      { issuers: [noAudience] },
      /issuers\[0\]\.audience: the audience your IdP puts in "aud"/,
      'oidc.issuers[0].audience',
    ],
    [
      { issuers: [{ ...good, jwksUrl: 'ftp://x/jwk' }] },
      /issuers\[0\]\.jwksUrl: an http\(s\) URL/,
      'oidc.issuers[0].jwksUrl',
    ],
    [{ issuers: [{ ...good, audiance: 'x' }] }, /issuers\[0\]\.audiance/, 'oidc.issuers[0].audiance'],
    [
      { issuers: [{ ...good, algorithms: ['HS256'] }] },
      /issuers\[0\]\.algorithms\[0\]/,
      'oidc.issuers[0].algorithms[0]',
    ],
    [
      { issuers: [{ ...good, groups: [{ idpGroup: '/x', group: 'g', properties: ['GenericPilot'] }] }] },
      /GenericPilot belongs to pilot tokens/,
      'oidc.issuers[0].groups[0].properties',
    ],
    [
      { issuers: [{ ...good, groups: [{ idpGroup: '/x', group: 'g', properties: ['Root'] }] }] },
      /issuers\[0\]\.groups\[0\]\.properties\[0\]/,
      'oidc.issuers[0].groups[0].properties[0]',
    ],
    [{ issuers: [{ ...good, issuer: 'pilothouse' }] }, /this matcher's own issuer/, 'oidc.issuers[0].issuer'],
    [{ issuers: [good, good] }, /issuers\[1\]\.issuer: .* is listed twice/, 'oidc.issuers[1].issuer'],
    [
      { issuers: [{ ...good, caFile: '/nonexistent/ca.pem' }] },
      /issuers\[0\]\.caFile: cannot read/,
      'oidc.issuers[0].caFile',
    ],
  ];
  for (const [config, message, field] of cases) {
    const error = refusal(config);
    assert.match(error.message, message);
    assert.equal(error.field, field, error.message);
  }
});
