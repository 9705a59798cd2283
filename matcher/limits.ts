/**
 * Limits on what one client may send: compiled once from flags, each with a documented default, a unit
 * in its name and a stable error code when exceeded (docs/matcher.md, "Limits"). A client over a limit
 * gets the error; everyone else is served as before.
 */
import { PilothouseError } from '../shared/errors.ts';
import { formatByteSize, parseByteSize } from '../shared/byte-size.ts';

export interface MatcherLimits {
  /** Body of POST /api/jobs (413 PAYLOAD_TOO_LARGE). */
  maxSubmitBytes: number;
  /** Jobs in one submission, all or nothing (413 SUBMISSION_TOO_LARGE). */
  maxJobsPerSubmission: number;
  /** One WebSocket frame from a pilot (the connection is closed with 1009, "message too big"). */
  maxFrameBytes: number;
  /** Frames a pilot connection may send per second on average (RATE_LIMITED, then closed with 1008)... */
  framesPerSec: number;
  /** ...and at once after a quiet spell (the token bucket's depth). */
  frameBurst: number;
  /** One sandbox upload (413 SANDBOX_TOO_LARGE). */
  maxSandboxBytes: number;
  /** Sandboxes stored for one VO, all uploads together; null = no quota (413 SANDBOX_QUOTA_EXCEEDED). */
  maxSandboxBytesPerVo: number | null;
  /** WebSocket connections open at once with one pilot token, per matcher (429 TOO_MANY_CONNECTIONS). */
  maxConnectionsPerToken: number;
}

/** 10,000 jobs of a few KiB each. */
export const DEFAULT_MAX_SUBMIT_BYTES = 64 * 1024 ** 2;
export const DEFAULT_MAX_JOBS_PER_SUBMISSION = 100_000;
/** The pilot's largest frame is a log batch of at most 256 KiB of encoded lines. */
export const DEFAULT_MAX_FRAME_BYTES = 1024 ** 2;
/** A pilot never needs a quarter of this frame rate; a flooding client exceeds it in milliseconds. */
export const DEFAULT_FRAMES_PER_SEC = 1_000;
/** DiracX caps sandboxes at 100 MiB. */
export const DEFAULT_MAX_SANDBOX_BYTES = 100 * 1024 ** 2;
export const DEFAULT_MAX_SANDBOX_BYTES_PER_VO = 100 * 1024 ** 3;
/** A pilot holds one connection; a few more cover reconnects while the old socket is still closing. */
export const DEFAULT_MAX_CONNECTIONS_PER_TOKEN = 8;
/** Below this a pilot's own log batches would be refused. */
export const MIN_FRAME_BYTES = 512 * 1024;

export const DEFAULT_LIMITS: MatcherLimits = {
  maxSubmitBytes: DEFAULT_MAX_SUBMIT_BYTES,
  maxJobsPerSubmission: DEFAULT_MAX_JOBS_PER_SUBMISSION,
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  framesPerSec: DEFAULT_FRAMES_PER_SEC,
  frameBurst: 2 * DEFAULT_FRAMES_PER_SEC,
  maxSandboxBytes: DEFAULT_MAX_SANDBOX_BYTES,
  maxSandboxBytesPerVo: DEFAULT_MAX_SANDBOX_BYTES_PER_VO,
  maxConnectionsPerToken: DEFAULT_MAX_CONNECTIONS_PER_TOKEN,
};

/** Flag values as given: sizes as strings (`64MiB`), counts as numbers. */
export interface RawLimits {
  maxSubmitBytes?: string | undefined;
  maxJobsPerSubmission?: number | undefined;
  maxFrameBytes?: string | undefined;
  maxFramesPerSec?: number | undefined;
  maxSandboxBytes?: string | undefined;
  /** `none` (or `0`) turns the quota off. */
  maxSandboxBytesPerVo?: string | undefined;
  maxConnectionsPerToken?: number | undefined;
}

export function compileLimits(raw: RawLimits): MatcherLimits {
  const framesPerSec = count(
    raw.maxFramesPerSec,
    'maxFramesPerSec',
    '--max-frames-per-sec',
    10,
    DEFAULT_FRAMES_PER_SEC,
  );
  return {
    maxSubmitBytes: size(raw.maxSubmitBytes, 'maxSubmitBytes', '--max-submit-bytes', 1024, DEFAULT_MAX_SUBMIT_BYTES),
    maxJobsPerSubmission: count(
      raw.maxJobsPerSubmission,
      'maxJobsPerSubmission',
      '--max-jobs-per-submission',
      1,
      DEFAULT_MAX_JOBS_PER_SUBMISSION,
    ),
    maxFrameBytes: size(
      raw.maxFrameBytes,
      'maxFrameBytes',
      '--max-frame-bytes',
      MIN_FRAME_BYTES,
      DEFAULT_MAX_FRAME_BYTES,
    ),
    framesPerSec,
    frameBurst: 2 * framesPerSec,
    maxSandboxBytes: size(
      raw.maxSandboxBytes,
      'maxSandboxBytes',
      '--max-sandbox-bytes',
      1024,
      DEFAULT_MAX_SANDBOX_BYTES,
    ),
    maxSandboxBytesPerVo:
      raw.maxSandboxBytesPerVo !== undefined && /^\s*(none|0)\s*$/i.test(raw.maxSandboxBytesPerVo)
        ? null
        : size(
            raw.maxSandboxBytesPerVo,
            'maxSandboxBytesPerVo',
            '--max-sandbox-bytes-per-vo',
            1024,
            DEFAULT_MAX_SANDBOX_BYTES_PER_VO,
          ),
    maxConnectionsPerToken: count(
      raw.maxConnectionsPerToken,
      'maxConnectionsPerToken',
      '--max-connections-per-token',
      1,
      DEFAULT_MAX_CONNECTIONS_PER_TOKEN,
    ),
  };
}

function size(text: string | undefined, field: string, flag: string, min: number, fallback: number): number {
  if (text === undefined) return fallback;
  const bytes = parseByteSize(text);
  if (bytes === null || bytes < min) {
    throw new PilothouseError(
      'CONFIG_INVALID',
      `${flag} must be a size of at least ${formatByteSize(min)} (e.g. 64MiB), got "${text}"`,
      { field },
    );
  }
  return bytes;
}

function count(value: number | undefined, field: string, flag: string, min: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new PilothouseError('CONFIG_INVALID', `${flag} must be a whole number ≥ ${min}, got ${value}`, { field });
  }
  return value;
}
