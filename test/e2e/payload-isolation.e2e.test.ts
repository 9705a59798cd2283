/**
 * Payload isolation with real pilots, real payloads and the real bubblewrap: a prober job tries to
 * read the pilot's token file (by its path, and by the path the pilot's command line names in
 * /proc/PPID/cmdline), to list the pilot's working area, and to read a file of a neighbour job
 * running on the same pilot. Under every mode this machine can run it fails to; under
 * `--isolation none` it succeeds (so the prober can tell), and the pilot says `none` in its hello
 * and in the job's history. The non-root bubblewrap case runs the pilot as the CE lab's account
 * (scripts/provision.sh makes it, and installs bubblewrap).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod } from 'node:fs/promises';
import { processesByRealUid } from '../../pilot/uid-pool.ts';
import path from 'node:path';
import { lab } from '../helpers/lab.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { spawnPilot, type PilotProcess } from '../helpers/pilot-process.ts';
import { waitFor } from '../helpers/wait.ts';

// Each attempt to steal leaves its name in `leak`; the verdict goes to std.out, the application
// status, and the exit code (0: nothing leaked).
const PROBER = `
leak=""
steal() { if cat "$2" >/dev/null 2>&1; then leak="$leak $1"; fi; }
steal token "$TOKEN_FILE"
steal neighbour "$NEIGHBOUR_DIR/secret.txt"
others=$(ls -A "$PILOT_WORKDIR" 2>/dev/null | grep -v -e "^job-$PILOTHOUSE_JOB_ID-" -e "^[.]staging-$PILOTHOUSE_JOB_ID-")
[ -n "$others" ] && leak="$leak workdir"
named=$(tr '\\0' '\\n' < /proc/$PPID/cmdline 2>/dev/null | grep -A1 -x -e --token-file -e --secret-file | tail -n 1)
[ -n "$named" ] && steal cmdline-file "$named"
echo "leaks:\${leak:- none}" > "$PILOTHOUSE_APP_STATUS_FILE"
echo "leaks:\${leak:- none}"
[ -z "$leak" ]
`;
const NEIGHBOUR = 'echo neighbour-secret > secret.txt; chmod 600 secret.txt; sleep 120';

interface Case {
  mode: string;
  args: string[];
  root: boolean;
  /** Before the pilot starts (e.g. what a site does for job uids). */
  prepare?: (pilotDir: string) => Promise<void>;
}

const CASES: Case[] = [
  { mode: 'bwrap', args: [], root: false },
  { mode: 'bwrap+uid', args: [], root: true },
  { mode: 'uid', args: ['--isolation', 'uid'], root: true, prepare: (dir) => chmod(dir, 0o711) },
  { mode: 'none', args: ['--isolation', 'none'], root: true },
];

describe('payload isolation', () => {
  let m: TestMatcher;
  let token = '';
  const pilots: PilotProcess[] = [];
  before(async () => {
    m = await startTestMatcher({ heartbeatIntervalSec: 1 });
    token = await m.pilotToken('local');
  });
  after(async () => {
    for (const pilot of pilots) await pilot.stop('SIGKILL');
    await m.close();
  });

  for (const c of CASES) {
    it(`isolation ${c.mode} - the prober ${c.mode === 'none' ? 'reads' : 'cannot read'} the pilot's token and its neighbour's files`, async () => {
      const site = `Iso-${c.mode.replace('+', '-')}.site`;
      const runAs = c.root ? undefined : accountOf(lab().user);
      const pilot = await spawnPilot({
        matcherUrl: m.url,
        token,
        args: [
          '--site',
          site,
          '--stamp',
          `iso-${c.mode.replace('+', '-')}`,
          '--cores',
          '2',
          '--drain-file',
          'none',
          ...c.args,
        ],
        ...(runAs === undefined ? {} : { runAs }),
      });
      pilots.push(pilot);
      await c.prepare?.(pilot.dir);
      const workdir = path.join(pilot.dir, 'work');
      const requirements = { sites: [site] };

      const neighbour = await submit(m, { executable: '/bin/sh', arguments: ['-c', NEIGHBOUR], requirements });
      await waitFor(async () => (await job(m, neighbour)).minorStatus === 'Application', 'the neighbour running').catch(
        (error: Error) => {
          throw new Error(`${error.message}; the pilot said:\n${pilot.log()}`);
        },
      );
      const prober = await submit(m, {
        executable: '/bin/sh',
        arguments: ['-c', PROBER],
        requirements,
        environment: {
          TOKEN_FILE: pilot.tokenFile,
          NEIGHBOUR_DIR: path.join(workdir, `job-${neighbour}-1`),
          PILOT_WORKDIR: workdir,
        },
      });
      const final = await waitFor(async () => {
        const now = await job(m, prober);
        return now.status === 'Done' || now.status === 'Failed' ? now : undefined;
      }, 'the prober final');

      const stamp = `iso-${c.mode.replace('+', '-')}`;
      const record = (await m.api('GET', `/api/pilots/${stamp}`)).body;
      assert.equal(record.node?.isolation, c.mode, 'the hello says which isolation applies');
      const history = final.history as { minorStatus: string }[];
      assert.ok(
        history.some((h) => h.minorStatus === `Job Initialization (isolation: ${c.mode})`),
        history.map((h) => h.minorStatus).join(' | '),
      );
      if (c.mode === 'none') {
        assert.equal(final.status, 'Failed');
        assert.equal(
          final.applicationStatus,
          'leaks: token neighbour workdir cmdline-file',
          'unprotected, and the prober can tell',
        );
      } else {
        assert.equal(final.applicationStatus, 'leaks: none', `under ${c.mode}`);
        assert.deepEqual([final.status, final.minorStatus], ['Done', 'Execution Complete']);
      }
      await m.api('POST', `/api/jobs/${neighbour}/kill`);
      await waitFor(async () => (await job(m, neighbour)).status === 'Killed', 'the neighbour killed');
      if (c.mode.includes('uid')) {
        // A kill reaches the whole payload inside the container too: nothing is left under a job uid.
        await waitFor(async () => (await processesOfJobUids()).length === 0, 'no process left under a job uid');
      }
    });
  }
});

/** Processes whose real uid is in the pilot's default job uid range. */
async function processesOfJobUids(): Promise<number[]> {
  const byUid = await processesByRealUid();
  return [...byUid].filter(([uid]) => uid >= 700000 && uid <= 700999).flatMap(([, pids]) => pids);
}

function accountOf(user: string): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

async function submit(m: TestMatcher, description: Record<string, unknown>): Promise<number> {
  const response = await m.api('POST', '/api/jobs', { json: description });
  assert.equal(response.status, 201, JSON.stringify(response.body));
  return (response.body.jobIds as number[])[0] as number;
}

async function job(m: TestMatcher, id: number): Promise<Record<string, any>> {
  return (await m.api('GET', `/api/jobs/${id}`)).body;
}
