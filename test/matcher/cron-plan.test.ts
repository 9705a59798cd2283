/**
 * A schedule's slots: 5 and 6 fields, time zones across daylight-saving changes, start and end times,
 * missed stretches after a downtime, the shortest gap (for the minimum interval), and the errors that
 * name the field a user got wrong.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CronPlan } from '../../matcher/schedules/cron-plan.ts';
import { PilothouseError } from '../../shared/errors.ts';

const iso = (ms: number): string => new Date(ms).toISOString();
const slots = (plan: CronPlan, after: string, count: number): string[] =>
  plan.nextSlots(Date.parse(after), count).map(iso);

describe('CronPlan', () => {
  it('reads 5 fields as minutes and 6 fields with seconds first; each slot strictly after the last', () => {
    const everyFive = CronPlan.compile({ cron: '*/5 * * * * *', timeZone: 'UTC' });
    assert.deepEqual(slots(everyFive, '2026-01-01T00:00:00.000Z', 3), [
      '2026-01-01T00:00:05.000Z',
      '2026-01-01T00:00:10.000Z',
      '2026-01-01T00:00:15.000Z',
    ]);
    const hourly = CronPlan.compile({ cron: '0 * * * *', timeZone: 'UTC' });
    assert.deepEqual(slots(hourly, '2026-01-01T00:00:00.000Z', 2), [
      '2026-01-01T01:00:00.000Z',
      '2026-01-01T02:00:00.000Z',
    ]);
    assert.equal(
      iso(everyFive.nextAfter(Date.parse('2026-01-01T00:00:04.999Z')) as number),
      '2026-01-01T00:00:05.000Z',
    );
  });

  it('a daily 02:30 in Europe/Paris fires once on the day the clocks skip that hour, and once when they repeat it', () => {
    const plan = CronPlan.compile({ cron: '30 2 * * *', timeZone: 'Europe/Paris' });
    // 29 March 2026: 02:00 CET becomes 03:00 CEST (01:00 UTC); 02:30 does not exist.
    assert.deepEqual(slots(plan, '2026-03-27T12:00:00.000Z', 3), [
      '2026-03-28T01:30:00.000Z', // 02:30 CET
      '2026-03-29T01:00:00.000Z', // the first instant after the gap, 03:00 CEST
      '2026-03-30T00:30:00.000Z', // 02:30 CEST
    ]);
    // 25 October 2026: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:30 happens twice, fired the first time.
    assert.deepEqual(slots(plan, '2026-10-23T12:00:00.000Z', 3), [
      '2026-10-24T00:30:00.000Z',
      '2026-10-25T00:30:00.000Z',
      '2026-10-26T01:30:00.000Z',
    ]);
  });

  it('an interval expression fires at both passes of the repeated autumn hour', () => {
    const plan = CronPlan.compile({ cron: '*/30 * * * *', timeZone: 'Europe/Paris' });
    assert.deepEqual(slots(plan, '2026-10-25T00:10:00.000Z', 5), [
      '2026-10-25T00:30:00.000Z', // 02:30 CEST
      '2026-10-25T01:00:00.000Z', // 02:00 CET
      '2026-10-25T01:30:00.000Z', // 02:30 CET
      '2026-10-25T02:00:00.000Z',
      '2026-10-25T02:30:00.000Z',
    ]);
  });

  it('keeps to the start (inclusive) and the end (exclusive)', () => {
    const plan = CronPlan.compile({
      cron: '0 * * * *',
      timeZone: 'UTC',
      startAt: '2026-01-01T03:00:00.000Z',
      endAt: '2026-01-01T05:00:00.000Z',
    });
    assert.deepEqual(slots(plan, '2026-01-01T00:00:00.000Z', 5), [
      '2026-01-01T03:00:00.000Z',
      '2026-01-01T04:00:00.000Z',
    ]);
    assert.equal(plan.nextAfter(Date.parse('2026-01-01T04:00:00.000Z')), null);
  });

  it('counts the slots of a downtime, exactly when few, and finds the latest without walking when many', () => {
    const plan = CronPlan.compile({ cron: '* * * * * *', timeZone: 'UTC' });
    const from = Date.parse('2026-01-01T00:00:00.000Z');
    const few = plan.slotsBetween(from, from + 10_500, 100);
    assert.deepEqual(
      few && {
        ...few,
        firstMs: iso(few.firstMs),
        lastMs: iso(few.lastMs),
        beforeLastMs: iso(few.beforeLastMs as number),
      },
      {
        firstMs: '2026-01-01T00:00:01.000Z',
        lastMs: '2026-01-01T00:00:10.000Z',
        beforeLastMs: '2026-01-01T00:00:09.000Z',
        count: 10,
        countIsExact: true,
      },
    );
    const many = plan.slotsBetween(from, from + 86_400_000, 100);
    assert.equal(many?.count, 100);
    assert.equal(many?.countIsExact, false);
    assert.equal(iso(many?.lastMs as number), '2026-01-02T00:00:00.000Z');
    assert.equal(iso(many?.beforeLastMs as number), '2026-01-01T23:59:59.000Z');
    assert.equal(plan.slotsBetween(from, from + 500, 100), null);
  });

  it('tells the shortest gap between slots, irregular expressions included', () => {
    assert.equal(CronPlan.compile({ cron: '*/5 * * * * *', timeZone: 'UTC' }).shortestGapMs(0), 5_000);
    // Every minute, but only on the first day of the month: the gap that counts is the minute.
    const firstOfMonth = CronPlan.compile({ cron: '* * 1 * *', timeZone: 'UTC' });
    assert.equal(firstOfMonth.shortestGapMs(Date.parse('2026-01-15T00:00:00.000Z')), 60_000);
    assert.equal(CronPlan.compile({ cron: '0 0 1 1 *', timeZone: 'UTC' }).shortestGapMs(0), 365 * 86_400_000);
  });

  it('names the field of a bad expression, time zone or period', () => {
    const refused = (
      input: Parameters<typeof CronPlan.compile>[0],
    ): { code: string; field: unknown; message: string } => {
      try {
        CronPlan.compile(input);
      } catch (error) {
        assert.ok(error instanceof PilothouseError);
        return { code: error.code, field: error.details.field, message: error.message };
      }
      assert.fail(`accepted ${JSON.stringify(input)}`);
    };
    const minute = refused({ cron: '61 * * * *', timeZone: 'UTC' });
    assert.deepEqual([minute.code, minute.field], ['CRON_INVALID', 'cron']);
    assert.match(minute.message, /minute/);
    const fields = refused({ cron: '* * * *', timeZone: 'UTC' });
    assert.match(fields.message, /4 fields; give 5/);
    assert.deepEqual([refused({ cron: '* * * * * * *', timeZone: 'UTC' }).field], ['cron']);
    assert.deepEqual([refused({ cron: 'every day', timeZone: 'UTC' }).code], ['CRON_INVALID']);
    const zone = refused({ cron: '* * * * *', timeZone: 'Mars/Olympus' });
    assert.deepEqual([zone.code, zone.field], ['CRON_INVALID', 'timeZone']);
    const period = refused({
      cron: '* * * * *',
      timeZone: 'UTC',
      startAt: '2026-01-02T00:00:00.000Z',
      endAt: '2026-01-01T00:00:00.000Z',
    });
    assert.deepEqual([period.code, period.field], ['VALIDATION_FAILED', 'endAt']);
  });
});
