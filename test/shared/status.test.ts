import { it } from 'node:test';
import assert from 'node:assert/strict';
import { JOB_STATUSES, allowedNextStatuses, canTransition } from '../../shared/job/status.ts';

it('status - follows DIRAC transition table on the happy path', () => {
  const path = ['Received', 'Checking', 'Waiting', 'Matched', 'Running', 'Completing', 'Done', 'Deleted'] as const;
  for (let i = 1; i < path.length; i += 1)
    assert.ok(canTransition(path[i - 1]!, path[i]!), `${path[i - 1]} → ${path[i]}`);
});

it('status - refuses what the table refuses', () => {
  assert.equal(canTransition('Waiting', 'Running'), false, 'a job must be Matched before it runs');
  assert.equal(canTransition('Done', 'Running'), false, 'a finished job never runs again');
  assert.equal(canTransition('Killed', 'Failed'), false, 'a killed job stays killed');
  assert.equal(canTransition('Deleted', 'Waiting'), false);
  assert.deepEqual(allowedNextStatuses('Deleted'), []);
});

it('status - a Stalled job is judged as Running, and staying put is allowed', () => {
  assert.ok(canTransition('Stalled', 'Completing'), 'Running → Completing applies to a resurrected Stalled job');
  assert.ok(canTransition('Stalled', 'Done'));
  for (const status of JOB_STATUSES) assert.ok(canTransition(status, status));
});
