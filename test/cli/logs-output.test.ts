/** What `pilothouse logs --follow` prints when a new tail arrives: only what was not printed yet. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { newOutput } from '../../cli/commands/logs.ts';

it('new output is what follows the overlap of the old tail and the new one', () => {
  assert.deepEqual(newOutput('', 'a\nb\n'), { text: 'a\nb\n', gap: false });
  assert.deepEqual(newOutput('a\nb\n', 'a\nb\nc\n'), { text: 'c\n', gap: false }, 'the tail grew');
  assert.deepEqual(newOutput('a\nb\nc\n', 'b\nc\nd\n'), { text: 'd\n', gap: false }, 'the tail slid');
  assert.deepEqual(newOutput('a\nb\n', 'a\nb\n'), { text: '', gap: false }, 'nothing new');
  assert.deepEqual(newOutput('a\n', 'x\ny\n'), { text: 'x\ny\n', gap: true }, 'more came than a tail holds');
});
