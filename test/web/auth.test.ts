// Tokens, the token file, the bad-token brake, and the --web option values.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateTokens, readTokenFile, roleOf, Throttle } from '../../src/web/auth.js';
import { finishWeb, parseListen } from '../../src/web/config.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function file(text: string): string {
  const d = mkdtempSync(join(tmpdir(), 'vhc-web-'));
  dirs.push(d);
  writeFileSync(join(d, 'tokens'), text);
  return join(d, 'tokens');
}

describe('tokens', () => {
  it('generated tokens are distinct, URL-safe and long; roleOf tells them apart and refuses anything else', () => {
    const t = generateTokens();
    expect(t.readWrite).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(t.readOnly).not.toBe(t.readWrite);
    expect(roleOf(t, t.readWrite)).toBe('read-write');
    expect(roleOf(t, t.readOnly)).toBe('read-only');
    for (const bad of [
      null,
      undefined,
      '',
      t.readWrite.slice(0, -1),
      `${t.readWrite}x`,
      t.readWrite.toUpperCase(),
      'x'.repeat(5000),
    ])
      expect(roleOf(t, bad)).toBeUndefined();
  });

  it('a token file gives both tokens; every mistake is named without showing a token', () => {
    const ok = file('# tokens\nread-write = abcdefghijklmnop0123\n\nread-only=qrstuvwxyzABCDEF4567\n');
    expect(readTokenFile(ok)).toEqual({ readWrite: 'abcdefghijklmnop0123', readOnly: 'qrstuvwxyzABCDEF4567' });
    expect(() => readTokenFile(file('read-write=abcdefghijklmnop0123\n'))).toThrow(/has no 'read-only=TOKEN' line/);
    expect(() => readTokenFile(file('read-write=short\nread-only=qrstuvwxyzABCDEF4567'))).toThrow(
      /line 1: the read-write token must be 16 to 256 characters/,
    );
    expect(() => readTokenFile(file('rw=abcdefghijklmnop0123'))).toThrow(/line 1: expected 'read-write=TOKEN'/);
    expect(() => readTokenFile(file('read-write=abcdefghijklmnop0123\nread-only=abcdefghijklmnop0123'))).toThrow(
      /must differ/,
    );
    expect(() => readTokenFile('/nonexistent/tokens')).toThrow(
      /--web-token-file: cannot read '\/nonexistent\/tokens': ENOENT/,
    );
    try {
      readTokenFile(file('read-write=abcdefghijklmnop0123\nread-only=abcdefghijklmnop0123'));
    } catch (e) {
      expect((e as Error).message).not.toContain('abcdefghijklmnop0123');
    }
  });

  it('the brake: delays double per bad token from an address, are capped, and bound waiting answers; other addresses are unaffected', () => {
    const t = new Throttle({ baseDelayMs: 100, maxDelayMs: 1000, maxPending: 3 });
    const delays = [1, 2, 3].map(() => t.fail('a')!.delayMs);
    expect(delays).toEqual([100, 200, 400]);
    expect(t.fail('a')).toBeUndefined(); // three answers already wait
    expect(t.fail('b')!.delayMs).toBe(100);
    const t2 = new Throttle({ baseDelayMs: 100, maxDelayMs: 1000 });
    for (let i = 0; i < 10; i++) t2.fail('c')!.done();
    expect(t2.fail('c')!.delayMs).toBe(1000);
    const small = new Throttle({ maxAddresses: 2 });
    small.fail('1')!.done();
    small.fail('2')!.done();
    small.fail('3')!.done();
    expect(small.failures('1')).toBe(0);
    expect(small.failures('3')).toBe(1);
  });
});

describe('--web values', () => {
  it('[HOST:]PORT, IPv6 in brackets; loopback by default', () => {
    expect(parseListen('8080')).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(parseListen('0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseListen('localhost:9')).toEqual({ host: 'localhost', port: 9 });
    expect(parseListen('[::1]:8080')).toEqual({ host: '::1', port: 8080 });
    expect(() => parseListen('::1:8080')).toThrow(/IPv6 address without brackets/);
    expect(() => parseListen('host:99999')).toThrow(/--web: 'host:99999' has port '99999', which is not 0..65535/);
    expect(() => parseListen(':80')).toThrow(/empty host/);
  });

  it('a non-loopback address needs TLS or --web-insecure; TLS needs both files', () => {
    expect(() => finishWeb({ listen: '0.0.0.0:8080' })).toThrow(
      /'0.0.0.0' is not a loopback address, so the web console needs TLS \(--web-cert and --web-key\), or --web-insecure/,
    );
    expect(finishWeb({ listen: '0.0.0.0:8080', insecure: true })).toMatchObject({
      host: '0.0.0.0',
      port: 8080,
      insecure: true,
      scrollback: 1000,
    });
    expect(finishWeb({ listen: '0.0.0.0:8080', cert: 'c.pem', key: 'k.pem' })).toMatchObject({
      cert: 'c.pem',
      key: 'k.pem',
    });
    expect(() => finishWeb({ listen: '8080', cert: 'c.pem' })).toThrow(/--web-key is missing/);
    expect(() => finishWeb({ listen: '8080', cert: 'c.pem', key: 'k.pem', insecure: true })).toThrow(
      /--web-insecure contradicts/,
    );
    expect(() => finishWeb({ listen: '8080', scrollback: -1 })).toThrow(/--web-scrollback: -1 is out of range/);
  });
});
