import { describe, expect, it } from 'vitest';
import { JsonSplitter, MAX_MESSAGE } from '../../src/control/framing.js';

describe('JsonSplitter', () => {
  it('ends a message where its braces balance, with or without newlines', () => {
    const s = new JsonSplitter();
    expect(s.push('{"execute": "a"}{"execute"')).toEqual([{ json: '{"execute": "a"}' }]);
    expect(s.push(': "b",\n "arguments": {"x": [1, {"y": 2}]}}\r\n')).toEqual([
      { json: '{"execute": "b",\n "arguments": {"x": [1, {"y": 2}]}}' },
    ]);
  });

  it('ignores brackets and escaped quotes inside strings', () => {
    const s = new JsonSplitter();
    const text = '{"data": "}{ \\" ]["}';
    expect(s.push(text.slice(0, 12))).toEqual([]);
    expect(s.push(text.slice(12))).toEqual([{ json: text }]);
  });

  it('reports text that is not an object or array as junk, up to its line end, and carries on', () => {
    const s = new JsonSplitter();
    expect(s.push('hello there')).toEqual([]);
    expect(s.push('\n{"a":1}\n')).toEqual([{ junk: 'hello there' }, { json: '{"a":1}' }]);
  });

  it('refuses a message longer than the limit and resynchronises at the next line', () => {
    const s = new JsonSplitter();
    expect(s.push(`{"x": "${'a'.repeat(MAX_MESSAGE)}`)).toEqual([{ tooLong: true }]);
    expect(s.push('still the same message"}\n{"b":2}')).toEqual([{ json: '{"b":2}' }]);
  });
});
