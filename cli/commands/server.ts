/** `pilothouse server`: the matcher (token administration is in token.ts). */
import { Command } from 'commander';
import { createLogger } from '../../shared/logger.ts';
import { compileMatcherConfig } from '../../matcher/config.ts';
import { startMatcher } from '../../matcher/server.ts';
import { readPolicyDocument } from '../../matcher/matching/scheduling-policy.ts';

export function serverCommand(): Command {
  return new Command('server')
    .description('run the matcher (REST API + pilot WebSocket) on a data directory')
    .requiredOption('--data-dir <dir>', 'where the database, keys, sandboxes and admin.token live')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8080')
    .option(
      '--db <url>',
      'the database: sqlite:PATH (one matcher; default DIR/pilothouse.sqlite) or postgres://USER@HOST:PORT/DB[?schema=S] (replicas)',
    )
    .option('--heartbeat-interval-sec <n>', 'how often pilots send heartbeats (default 30)', parseFloat)
    .option('--tls-cert <file>', 'serve https/wss with this certificate (PEM, with its chain)')
    .option('--tls-key <file>', 'the private key of --tls-cert (PEM)')
    .option(
      '--oidc-config <file>',
      'trusted external OIDC issuers, their claim mapping and sign-in (default: DIR/oidc.json)',
    )
    .option(
      '--public-url <url>',
      "the matcher's URL as users' browsers reach it, for sign-in redirects (default: the Host of each request)",
    )
    .option(
      '--key-rotation-age-sec <n>',
      'rotate the signing key automatically at this age (default: never)',
      parseFloat,
    )
    .option('--stalled-after-sec <n>', 'a running job silent this long is Stalled (default 600)', parseFloat)
    .option('--max-attempts <n>', 'attempts a job may have, reschedules included (default 4)', Number)
    .option(
      '--task-queue-refresh-sec <n>',
      'how often task queues and the site mask are re-read from the database, behind the instant wake-ups (default 5)',
      parseFloat,
    )
    .option(
      '--pilot-timeout-sec <n>',
      'a pilot connection that answers nothing, pings included, this long is dropped; pinged every third of it (default 30)',
      parseFloat,
    )
    .option(
      '--reconnect-grace-sec <n>',
      'a job whose pilot is gone is rescheduled once silent this long (default 90; a dropped pilot that returns sooner keeps it)',
      parseFloat,
    )
    .option(
      '--matched-timeout-sec <n>',
      'a job Matched this long to a pilot that stays connected and never starts it is rescheduled (default 7200, at least 60)',
      parseFloat,
    )
    .option(
      '--fault-sweep-interval-sec <n>',
      'how often stalled, stuck and rescheduled jobs are looked for (default 60)',
      parseFloat,
    )
    .option(
      '--reschedule-delays-sec <list>',
      'hold before a rescheduled job waits again, by reschedule count; the last repeats (default 60,180,300,600)',
    )
    .option('--max-submit-bytes <size>', 'largest body of a job submission, e.g. 64MiB (default 64MiB)')
    .option(
      '--max-jobs-per-submission <n>',
      'most jobs in one submission (JSON array or expanded JDL), all or nothing (default 100000)',
      Number,
    )
    .option('--max-frame-bytes <size>', 'largest WebSocket frame a pilot may send, at least 512KiB (default 1MiB)')
    .option(
      '--max-frames-per-sec <n>',
      'frames a pilot connection may send per second on average, twice that at once; beyond, RATE_LIMITED and closed (default 1000)',
      Number,
    )
    .option('--max-sandbox-bytes <size>', 'largest sandbox upload (default 100MiB)')
    .option(
      '--max-sandbox-bytes-per-vo <size>',
      "sandbox bytes stored for one VO, all uploads together; 'none' for no quota (default 100GiB)",
    )
    .option(
      '--max-connections-per-token <n>',
      'pilot WebSocket connections open at once with one token, per matcher (default 8)',
      Number,
    )
    .option(
      '--purge-final-jobs-after-days <days>',
      "Done, Completed, Failed and Killed jobs are removed with their history this long after their last update; 'never' keeps them (default 90)",
    )
    .option(
      '--purge-deleted-jobs-after-days <days>',
      "Deleted jobs are removed this long after their deletion; 'never' keeps them (default 7)",
    )
    .option(
      '--purge-unused-sandboxes-after-days <days>',
      "sandboxes no stored job names are deleted once unused this long; 'never' keeps them (default 7)",
    )
    .option(
      '--purge-pilot-logs-after-days <days>',
      "a pilot's log is dropped once its latest line is this old; 'never' keeps them (default 30)",
    )
    .option('--retention-sweep-interval-sec <n>', 'how often the purges above run (default 3600)', parseFloat)
    .option(
      '--schedule-min-interval-sec <n>',
      'recurring schedules that would fire more often than once per this many seconds are refused (default 5)',
      Number,
    )
    .option(
      '--schedule-window-sec <n>',
      "how late a schedule's slot may still fire, after a restart say; an older slot is missed and the schedule's catch-up policy decides (default 60)",
      parseFloat,
    )
    .option('--pilot-bundle <file>', 'the pilot bundle served to pilot wrappers (default: dist/pilot.mjs)')
    .option(
      '--policy <file>',
      'scheduling policy JSON (group shares, job-type ranks, running limits, matching delays), stored in the database for every replica (default: the stored one, else equal shares and no limits)',
    )
    .option('--log-level <level>', 'pino log level', 'info')
    .action(
      async (options: {
        dataDir: string;
        listen: string;
        db?: string;
        heartbeatIntervalSec?: number;
        tlsCert?: string;
        tlsKey?: string;
        oidcConfig?: string;
        publicUrl?: string;
        keyRotationAgeSec?: number;
        stalledAfterSec?: number;
        maxAttempts?: number;
        taskQueueRefreshSec?: number;
        pilotTimeoutSec?: number;
        reconnectGraceSec?: number;
        matchedTimeoutSec?: number;
        faultSweepIntervalSec?: number;
        rescheduleDelaysSec?: string;
        maxSubmitBytes?: string;
        maxJobsPerSubmission?: number;
        maxFrameBytes?: string;
        maxFramesPerSec?: number;
        maxSandboxBytes?: string;
        maxSandboxBytesPerVo?: string;
        maxConnectionsPerToken?: number;
        purgeFinalJobsAfterDays?: string;
        purgeDeletedJobsAfterDays?: string;
        purgeUnusedSandboxesAfterDays?: string;
        purgePilotLogsAfterDays?: string;
        retentionSweepIntervalSec?: number;
        scheduleMinIntervalSec?: number;
        scheduleWindowSec?: number;
        policy?: string;
        pilotBundle?: string;
        logLevel: string;
      }) => {
        const config = compileMatcherConfig(options);
        const policy = options.policy === undefined ? undefined : await readPolicyDocument(options.policy);
        const logger = createLogger({ component: 'matcher', level: options.logLevel });
        const matcher = await startMatcher(config, { logger, ...(policy && { policy }) });
        process.stderr.write(`matcher listening on ${matcher.url}\nadmin token: ${matcher.adminTokenPath}\n`);
        await waitForSignal();
        await matcher.stop();
      },
    );
}

export function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
