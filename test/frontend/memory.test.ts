// Self-check of the test front-end's guest memory.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GuestMemory } from './memory.js';

const memfdMaps = () =>
  readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.includes('memfd:vhc-test-guest-ram')).length;

describe('GuestMemory', () => {
  it('is a shared memfd mapping with a bump allocator and two address spaces', () => {
    const before = memfdMaps();
    const m = new GuestMemory({ size: 1 << 20, guestBase: 0x40000000n, userBase: 0x7e0000000000n });
    expect(memfdMaps()).toBe(before + 1);
    const a = m.alloc(10, 4096);
    const b = m.alloc(10, 64);
    expect(a % 4096).toBe(0);
    expect(b).toBeGreaterThanOrEqual(a + 10);
    expect(b % 64).toBe(0);
    expect(m.gpa(a)).toBe(0x40000000n + BigInt(a));
    expect(m.uaddr(a)).toBe(0x7e0000000000n + BigInt(a));
    expect(m.offsetOfGpa(0x40000000n + BigInt(a), 10)).toBe(a);
    expect(m.offsetOfGpa(0x3fffffffn)).toBe(-1);
    expect(m.offsetOfGpa(0x40000000n + BigInt(m.size) - 4n, 8)).toBe(-1);
    expect(() => m.alloc(2 << 20)).toThrow(/exhausted/);
    m.close();
    expect(memfdMaps()).toBe(before);
  });

  it('stays readable (as zeros) after close, so a late callback cannot crash the process', () => {
    const m = new GuestMemory({ size: 1 << 20 });
    m.bytes[5000] = 7;
    m.close();
    expect(m.bytes[5000]).toBe(0);
    expect(Atomics.load(new Uint16Array(m.bytes.buffer), 100)).toBe(0);
  });
});
