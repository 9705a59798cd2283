/**
 * Authorization policies. Route-level policies say which kind of token a route accepts and which
 * properties it needs; object-level rules (whose job is this?) live in the functions below and are
 * called by the handlers. Every REST route names one policy (the router checks it before the
 * handler runs), and every pilot WebSocket message type has an entry in PILOT_MESSAGE_POLICIES (the
 * session checks it before dispatching). test/matcher/routes-policy.int.test.ts enumerates both.
 *
 * Who may do what:
 *  - NormalUser: submit; see and act on their own jobs (group-wide when the token has JobSharing);
 *  - JobAdministrator: see and act on every job of their VO, its task queues and pilots;
 *  - ServiceAdministrator: everything, in every VO; mints pilot secrets, revokes tokens;
 *  - pilot tokens: only the pilot WebSocket; bound to a VO and a site (and, when obtained from a
 *    pilot secret, to one pilot stamp). A pilot only ever receives jobs of its token's VO;
 *  - job tokens: only their own job's status, heartbeat and sandbox routes, while the attempt lives.
 */
import { PilothouseError } from '../../shared/errors.ts';
import type { Principal, Property, TokenKind } from '../../shared/auth/claims.ts';
import type { JobOwnership } from '../../shared/job/model.ts';
import type { PilotMessage } from '../../shared/protocol/messages.ts';

interface Policy {
  public: boolean;
  /** The token kinds the route accepts (empty for public routes). */
  kinds: readonly TokenKind[];
  summary: string;
  check(principal: Principal): void;
}

function requireKind(principal: Principal, kinds: readonly TokenKind[]): void {
  if (!kinds.includes(principal.kind)) {
    throw new PilothouseError(
      'FORBIDDEN',
      `a ${principal.kind} token cannot use this route (needs ${kinds.join(' or ')})`,
    );
  }
}

function requireAnyProperty(principal: Principal, properties: readonly Property[]): void {
  if (!properties.some((p) => principal.properties.includes(p))) {
    throw new PilothouseError('FORBIDDEN', `this route needs one of the properties ${properties.join(', ')}`);
  }
}

export const POLICIES = {
  public: { public: true, kinds: [], summary: 'no token needed', check: () => {} },
  user: {
    public: false,
    kinds: ['user'],
    summary: 'any user token; object rules decide what it may see',
    check: (p: Principal) => requireKind(p, ['user']),
  },
  submitter: {
    public: false,
    kinds: ['user'],
    summary: 'a user token with NormalUser',
    check: (p: Principal) => {
      requireKind(p, ['user']);
      requireAnyProperty(p, ['NormalUser']);
    },
  },
  jobAdmin: {
    public: false,
    kinds: ['user'],
    summary: 'a user token with JobAdministrator or ServiceAdministrator',
    check: (p: Principal) => {
      requireKind(p, ['user']);
      requireAnyProperty(p, ['JobAdministrator', 'ServiceAdministrator']);
    },
  },
  serviceAdmin: {
    public: false,
    kinds: ['user'],
    summary: 'a user token with ServiceAdministrator',
    check: (p: Principal) => {
      requireKind(p, ['user']);
      requireAnyProperty(p, ['ServiceAdministrator']);
    },
  },
  pilot: {
    public: false,
    kinds: ['pilot'],
    summary: 'a pilot token',
    check: (p: Principal) => requireKind(p, ['pilot']),
  },
  jobToken: {
    public: false,
    kinds: ['job'],
    summary: 'a job token, for the job and attempt it is bound to',
    check: (p: Principal) => requireKind(p, ['job']),
  },
  userOrJob: {
    public: false,
    kinds: ['user', 'job'],
    summary: 'a user token, or a job token for the job the object belongs to',
    check: (p: Principal) => requireKind(p, ['user', 'job']),
  },
} as const satisfies Record<string, Policy>;

export type PolicyName = keyof typeof POLICIES;

export function isAdministrator(principal: Principal): boolean {
  return principal.kind === 'user' && principal.properties.includes('ServiceAdministrator');
}

export function isJobAdministratorFor(principal: Principal, vo: string): boolean {
  if (principal.kind !== 'user') return false;
  return isAdministrator(principal) || (principal.properties.includes('JobAdministrator') && principal.vo === vo);
}

/** A user may see a job if it is theirs, their group shares jobs, or they administer jobs of its VO. */
export function canSeeJob(principal: Principal, job: JobOwnership & { id: number }): boolean {
  if (principal.kind === 'job') return principal.jobId === job.id && principal.vo === job.vo;
  if (principal.kind !== 'user') return false;
  if (isJobAdministratorFor(principal, job.vo)) return true;
  if (principal.vo !== job.vo) return false;
  if (principal.subject === job.owner) return true;
  return principal.properties.includes('JobSharing') && principal.group === job.group;
}

/** A job token acts on its own job only: anything else is FORBIDDEN. */
export function assertJobTokenFor(principal: Principal, jobId: number): void {
  if (principal.kind !== 'job' || principal.jobId !== jobId) {
    throw new PilothouseError('FORBIDDEN', `this token is not for job ${jobId}`, { jobId });
  }
}

/**
 * The pilot a token may speak for: a token from a pilot secret names exactly one stamp and one site;
 * a generic pilot token (minted by an administrator) needs GenericPilot and may be bound to a site.
 */
export function assertPilotMayBe(principal: Principal, pilotStamp: string, site: string): void {
  if (principal.kind !== 'pilot') throw new PilothouseError('FORBIDDEN', 'only pilot tokens may say hello');
  if (principal.pilotStamp !== undefined) {
    if (principal.pilotStamp !== pilotStamp) {
      throw new PilothouseError('FORBIDDEN', `this pilot token is bound to pilot ${principal.pilotStamp}`);
    }
  } else if (!principal.properties.includes('GenericPilot')) {
    throw new PilothouseError('FORBIDDEN', 'a pilot token without a pilot stamp needs the GenericPilot property');
  }
  const boundSite = principal.site;
  if (boundSite === undefined || (boundSite !== '*' && boundSite !== site)) {
    throw new PilothouseError('FORBIDDEN', `this pilot token is bound to site ${boundSite ?? '(none)'}`);
  }
}

/** Only the pilot holding a job (and of the job's VO) may report on it. */
export function canPilotReportOn(
  principal: Principal,
  pilotId: string,
  job: JobOwnership & { pilotId: string | null },
): boolean {
  return principal.kind === 'pilot' && job.pilotId === pilotId && job.vo === principal.vo;
}

export type PilotMessageType = PilotMessage['type'];

interface PilotMessagePolicy {
  /** May the message come before hello? Only hello itself. */
  beforeHello: boolean;
  summary: string;
}

/**
 * One entry per WebSocket message type. Before any of them is dispatched, the session checks the
 * token kind (pilot), that the token is still valid (not revoked, its key not revoked), and the
 * hello ordering; the summary says which object rule the session applies on top.
 */
export const PILOT_MESSAGE_POLICIES = {
  hello: { beforeHello: true, summary: 'stamp and site must match the token binding (assertPilotMayBe)' },
  offer: { beforeHello: false, summary: "matched only against the token's VO and the hello's (bound) site" },
  'offer.cancel': { beforeHello: false, summary: "only the pilot's own parked offer" },
  'job.status': { beforeHello: false, summary: 'only for a job this pilot holds, of its VO (canPilotReportOn)' },
  'job.statuses': {
    beforeHello: false,
    summary: 'each attempt as job.status: only for a job this pilot holds, of its VO (canPilotReportOn)',
  },
  heartbeat: { beforeHello: false, summary: 'samples of jobs this pilot does not hold are ignored (canPilotReportOn)' },
  log: { beforeHello: false, summary: "appended to the pilot's own log only (the hello's stamp)" },
  bye: { beforeHello: false, summary: "only the pilot's own record" },
} as const satisfies Record<PilotMessageType, PilotMessagePolicy>;

export function checkPilotMessage(principal: Principal, type: PilotMessageType, helloDone: boolean): void {
  requireKind(principal, ['pilot']);
  const policy: PilotMessagePolicy | undefined = PILOT_MESSAGE_POLICIES[type];
  if (!policy) throw new PilothouseError('FORBIDDEN', `no policy for message ${type}`);
  if (!helloDone && !policy.beforeHello)
    throw new PilothouseError('PROTOCOL_VIOLATION', 'the first message must be hello');
}
