import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { KNOWN_BACKENDS, parseChardevOptions } from '../../src/chardev/registry.js';
import { createChardev } from './create.js';

function failure(backend: string, id: string, opts: Record<string, string>): ConfigError {
  try {
    parseChardevOptions(backend, id, opts);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('parseChardevOptions', () => {
  it('knows every backend, hub included', () => {
    expect([...KNOWN_BACKENDS].sort()).toEqual([
      'file',
      'hub',
      'journal',
      'null',
      'pipe',
      'pty',
      'ringbuf',
      'socket',
      'stdio',
    ]);
    expect(failure('vc', 'v0', {}).message).toBe(
      `chardev 'v0': unknown backend 'vc' (known: ${KNOWN_BACKENDS.join(', ')})`,
    );
  });

  it('returns typed options with QEMU defaults', () => {
    expect(parseChardevOptions('socket', 's0', { path: '/run/vm1/c.sock', server: 'on', wait: 'off' })).toEqual({
      backend: 'socket',
      id: 's0',
      address: { type: 'unix', path: '/run/vm1/c.sock' },
      server: true,
      wait: false,
      reconnectMs: 0,
      nodelay: false,
      telnet: false,
      mode: 0o600,
      common: { logappend: false, timestamp: false, member: {} },
    });
    const tcp = parseChardevOptions('socket', 't0', { port: '4555', reconnect: '2', nodelay: 'on' });
    expect(tcp).toMatchObject({
      address: { type: 'tcp', host: 'localhost', port: 4555 },
      server: false,
      reconnectMs: 2000,
      nodelay: true,
    });
    expect(parseChardevOptions('socket', 't1', { path: '/s', 'reconnect-ms': '250' })).toMatchObject({
      reconnectMs: 250,
    });
    expect(parseChardevOptions('ringbuf', 'r0', {})).toMatchObject({ size: 65536 });
    expect(parseChardevOptions('ringbuf', 'r1', { size: '1M' })).toMatchObject({ size: 1 << 20 });
    expect(parseChardevOptions('file', 'f0', { path: '/l', append: 'on', 'input-path': '/i' })).toMatchObject({
      path: '/l',
      append: true,
      inputPath: '/i',
    });
    expect(parseChardevOptions('stdio', 'io', {})).toMatchObject({ signal: true });
    expect(
      parseChardevOptions('pty', 'p0', {
        logfile: '/x.log',
        logappend: 'on',
        timestamp: 'on',
        policy: 'drop',
        buffer: '64K',
        input: 'off',
      }),
    ).toMatchObject({
      common: {
        logfile: '/x.log',
        logappend: true,
        timestamp: true,
        member: { policy: 'drop', buffer: 65536, input: false },
      },
    });
  });

  it('parses a hub list', () => {
    expect(parseChardevOptions('hub', 'hub0', { 'chardevs.1': 's0', 'chardevs.0': 'pty0' })).toMatchObject({
      backend: 'hub',
      chardevs: ['pty0', 's0'],
      maxMembers: 64,
    });
    expect(parseChardevOptions('hub', 'hub1', { 'chardevs.0': 'a', 'max-members': '2' })).toMatchObject({
      maxMembers: 2,
    });
  });

  it.each([
    ['pty', { bogus: '1' }, `chardev 'x': unknown option 'bogus'`, 'bogus', '1'],
    [
      'socket',
      { path: '/s', server: 'maybe' },
      `chardev 'x': option 'server' must be on or off, not 'maybe'`,
      'server',
      'maybe',
    ],
    ['socket', { port: 'http' }, `chardev 'x': option 'port' must be a number, not 'http'`, 'port', 'http'],
    ['socket', { port: '70000' }, `chardev 'x': option 'port' must be at most 65535, not '70000'`, 'port', '70000'],
    ['socket', {}, `chardev 'x': needs 'path' (unix) or 'port' (tcp)`, 'path', undefined],
    [
      'socket',
      { path: '/s', port: '1' },
      `chardev 'x': options 'path' and 'host'/'port' exclude each other`,
      'path',
      '/s',
    ],
    ['socket', { path: '/s', wait: 'off' }, `chardev 'x': option 'wait' applies to server=on only`, 'wait', 'off'],
    [
      'socket',
      { path: '/s', server: 'on', reconnect: '1' },
      `chardev 'x': option 'reconnect' applies to client sockets (server=off) only`,
      'reconnect',
      '1',
    ],
    [
      'socket',
      { path: '/s', reconnect: '1', 'reconnect-ms': '5' },
      `chardev 'x': options 'reconnect' and 'reconnect-ms' exclude each other`,
      'reconnect-ms',
      '5',
    ],
    [
      'socket',
      { path: '/s', server: 'on', mode: '777x' },
      `chardev 'x': option 'mode' must be octal permission bits like 0600, not '777x'`,
      'mode',
      '777x',
    ],
    ['file', {}, `chardev 'x': option 'path' is required`, 'path', undefined],
    ['file', { path: '' }, `chardev 'x': option 'path' is empty`, 'path', ''],
    ['pipe', {}, `chardev 'x': option 'path' is required`, 'path', undefined],
    ['ringbuf', { size: '100' }, `chardev 'x': option 'size' must be a power of two, not '100'`, 'size', '100'],
    ['ringbuf', { size: '-4' }, `chardev 'x': option 'size' must be a size in bytes, not '-4'`, 'size', '-4'],
    [
      'pty',
      { policy: 'maybe' },
      `chardev 'x': option 'policy' must be lossless or drop, not 'maybe'`,
      'policy',
      'maybe',
    ],
    [
      'pty',
      { policy: 'lossless', buffer: '4096' },
      `chardev 'x': option 'buffer' applies to policy=drop only`,
      'buffer',
      '4096',
    ],
    [
      'pty',
      { input: 'sometimes' },
      `chardev 'x': option 'input' must be on or off, not 'sometimes'`,
      'input',
      'sometimes',
    ],
    ['pty', { logappend: '2' }, `chardev 'x': option 'logappend' must be on or off, not '2'`, 'logappend', '2'],
    ['hub', {}, `hub 'x': 'chardevs' list is empty (give chardevs.0=ID, chardevs.1=ID, ...)`, 'chardevs.0', undefined],
    [
      'hub',
      { 'chardevs.1': 'a' },
      `hub 'x': 'chardevs' list has a gap: chardevs.0 is missing`,
      'chardevs.0',
      undefined,
    ],
    ['hub', { 'chardevs.x': 'a' }, `hub 'x': bad list element 'chardevs.x' (expected chardevs.N)`, 'chardevs.x', 'a'],
    [
      'hub',
      { 'chardevs.0': 'a', 'chardevs.1': 'b', 'max-members': '1' },
      `hub 'x': too many members: 2 (maximum is 1)`,
      'chardevs.1',
      'b',
    ],
    [
      'hub',
      { 'chardevs.0': 'a', policy: 'drop' },
      `hub 'x': option 'policy' belongs on the member chardevs, not on the hub`,
      'policy',
      'drop',
    ],
  ] as [string, Record<string, string>, string, string, string | undefined][])(
    '%s %j -> %s',
    (backend, opts, message, option, value) => {
      const err = failure(backend, 'x', opts);
      expect(err.message).toBe(message);
      expect(err.option).toBe(option);
      expect(err.value).toBe(value);
    },
  );

  it('is pure: validating a socket, pty or file touches nothing', () => {
    parseChardevOptions('socket', 's', { path: '/nonexistent/dir/s.sock', server: 'on' });
    parseChardevOptions('file', 'f', { path: '/nonexistent/dir/f' });
    parseChardevOptions('pty', 'p', { path: '/nonexistent/dir/p' });
  });
});

describe('createChardev', () => {
  it('builds backends and leaves hubs to the hub layer', () => {
    expect(createChardev('null', 'n', {}).backend).toBe('null');
    expect(() => createChardev('hub', 'h', { 'chardevs.0': 'n' })).toThrow(
      `hub 'h' is built by the hub layer (Hub.fromConfig), not as a chardev`,
    );
  });
});
