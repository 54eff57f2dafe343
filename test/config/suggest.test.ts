import { describe, expect, it } from 'vitest';
import { closest, didYouMean, editDistance } from '../../src/config/suggest.js';

describe('suggestions', () => {
  it('counts insertions, deletions, substitutions and swaps as one edit each', () => {
    expect(editDistance('socket', 'socket')).toBe(0);
    expect(editDistance('sockt', 'socket')).toBe(1);
    expect(editDistance('sockets', 'socket')).toBe(1);
    expect(editDistance('sucket', 'socket')).toBe(1);
    expect(editDistance('nmae', 'name')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
  });

  it('suggests only plausible typos', () => {
    expect(closest('max-port', ['max-ports', 'multiport'])).toBe('max-ports');
    expect(closest('xyz', ['socket', 'chardev'])).toBeUndefined();
    expect(didYouMean('chardve', ['chardev', 'device'])).toBe("; did you mean 'chardev'?");
    expect(didYouMean('zzzz', ['chardev'])).toBe('');
  });
});
