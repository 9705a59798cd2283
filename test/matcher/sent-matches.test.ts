/** Which sent matches a heartbeat finds lost (sent-matches.ts): only those it covers and does not hold. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SentMatches } from '../../matcher/ws/sent-matches.ts';

test('a heartbeat judges the matches up to its matchSeq: held ones are kept, missing ones are lost', () => {
  const sent = new SentMatches();
  sent.sent(10, 1, 1);
  sent.sent(11, 1, 2);
  sent.sent(12, 2, 3);
  // Received up to 2: job 12 (match 3) was still on its way and is not judged.
  assert.deepEqual(sent.judge(2, [{ jobId: 11, attempt: 1 }]), [{ jobId: 10, attempt: 1 }]);
  assert.equal(sent.size, 1, 'judged matches are forgotten');
  // The same heartbeat again judges nothing new; a later one covers match 3.
  assert.deepEqual(sent.judge(2, []), []);
  assert.deepEqual(sent.judge(3, [{ jobId: 12, attempt: 2 }]), []);
  assert.equal(sent.size, 0);
});

test('another attempt of the same job is not the match sent', () => {
  const sent = new SentMatches();
  sent.sent(10, 2, 1);
  assert.deepEqual(sent.judge(1, [{ jobId: 10, attempt: 1 }]), [{ jobId: 10, attempt: 2 }]);
});

test('a pilot that never judges its matches keeps only the latest 1,000', () => {
  const sent = new SentMatches();
  for (let seq = 1; seq <= 1_500; seq += 1) sent.sent(seq, 1, seq);
  assert.equal(sent.size, 1_000);
  const lost = sent.judge(1_500, []);
  assert.equal(lost.length, 1_000);
  assert.deepEqual(lost[0], { jobId: 501, attempt: 1 }, 'the oldest went first');
});
