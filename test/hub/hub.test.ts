import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Chardev } from '../../src/chardev/chardev.js';
import { parseChardevOptions } from '../../src/chardev/registry.js';
import { createChardev } from '../chardev/create.js';
import type { ChardevConfig, HubOptions } from '../../src/chardev/options.js';
import type { RingbufChardev } from '../../src/chardev/ringbuf.js';
import { ConfigError, StateError } from '../../src/errors.js';
import { GENERIC_MEMBER_DEFAULTS, Hub } from '../../src/hub/hub.js';
import { CONSOLE_MEMBER_DEFAULTS } from '../../src/port/port.js';
import { defer, next, socketServer, start, tmpdir, until } from '../chardev/helpers.js';

function hubOf(id: string, members: Chardev[], opts: Record<string, string> = {}): Hub {
  const entries = Object.fromEntries(members.map((m, i) => [`chardevs.${i}`, m.id]));
  const cfg = parseChardevOptions('hub', id, { ...entries, ...opts }) as ChardevConfig<HubOptions>;
  const hub = Hub.fromConfig(cfg, (x) => members.find((m) => m.id === x));
  defer(() => hub.close());
  return hub;
}

/** Numbered bytes, so a gap or a repeat shows up at once. */
function pattern(from: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (from + i) % 251;
  return b;
}

describe('hub fan-out', () => {
  it('sends guest output to every open member and skips closed ones', async () => {
    const r1 = await start<RingbufChardev>('ringbuf', 'r1');
    const r2 = await start<RingbufChardev>('ringbuf', 'r2');
    const s = await socketServer('s0');
    const hub = hubOf('hub0', [r1, r2, s.chardev]);
    hub.output(Buffer.from('nobody on the socket yet\n'));
    const client = await s.dial();
    hub.output(Buffer.from('hello all\n'));
    await until(() => client.bytes().length === 10, 'socket output');
    expect(client.bytes().toString()).toBe('hello all\n'); // nothing from before it connected
    expect(r1.read(1000).toString()).toBe('nobody on the socket yet\nhello all\n');
    expect(r2.read(1000).toString()).toBe('nobody on the socket yet\nhello all\n');
  });

  it('a failing member is skipped and holds nobody back, even if lossless', async () => {
    const r = await start<RingbufChardev>('ringbuf', 'r');
    const full = await start('file', 'full', { path: '/dev/full', policy: 'lossless' }); // every write: ENOSPC
    const hub = hubOf('hub1', [full, r]);
    const failed = next(full, 'failed');
    hub.output(Buffer.from('first'));
    await failed;
    for (let i = 0; i < 100; i++) hub.output(pattern(i * 1000, 1000));
    expect(hub.outputBlocked).toBe(false);
    expect(
      r
        .read(1 << 20)
        .equals(
          Buffer.concat([
            Buffer.from('first'),
            ...Array.from({ length: 100 }, (_, i) => pattern(i * 1000, 1000)),
          ]).subarray(-65536),
        ),
    ).toBe(true);
    const st = hub.stats().members.find((m) => m.id === 'full')!;
    expect(st.failure).toMatch(/ENOSPC/);
    expect(st.lag).toBe(0);
  });

  it('a member that reconnects starts at the current position, without stale bytes', async () => {
    const s = await socketServer('s1', { policy: 'drop', buffer: '1M' });
    const hub = hubOf('hub2', [s.chardev]);
    const a = await s.dial();
    a.pause(); // a stalled viewer: output piles up for it
    for (let i = 0; i < 64; i++) hub.output(pattern(i, 16 * 1024));
    await until(() => hub.stats().members[0]!.lag > 0, 'member falls behind');
    a.destroy();
    await next(s.chardev, 'disconnected');
    expect(hub.stats().members[0]!.lag).toBe(0); // what it did not take is forgotten
    hub.output(Buffer.from('while away'));
    const b = await s.dial();
    hub.output(Buffer.from('fresh'));
    await until(() => b.bytes().length >= 5, 'new client output');
    expect(b.bytes().toString()).toBe('fresh');
  });
});

describe('hub open counting', () => {
  it('opens on the first member and closes on the last ("the last one turns off the light")', async () => {
    const s1 = await socketServer('a');
    const s2 = await socketServer('b');
    const hub = hubOf('hub3', [s1.chardev, s2.chardev]);
    const events: boolean[] = [];
    hub.on('open', (o: boolean) => events.push(o));
    expect(hub.hostOpen).toBe(false);
    const c1 = await s1.dial();
    const c2 = await s2.dial();
    expect(hub.hostOpen).toBe(true);
    c1.destroy();
    await next(s1.chardev, 'disconnected');
    expect(hub.hostOpen).toBe(true);
    c2.destroy();
    await next(s2.chardev, 'disconnected');
    expect(hub.hostOpen).toBe(false);
    expect(events).toEqual([true, false]);
  });

  it('counts members that are connected when attached, and detached ones no more', async () => {
    const r = await start('ringbuf', 'rr'); // always connected
    const hub = new Hub('hub4');
    defer(() => hub.close());
    hub.attach(r);
    expect(hub.hostOpen).toBe(true);
    hub.detach('rr');
    expect(hub.hostOpen).toBe(false);
  });
});

describe('hub input', () => {
  it('takes input from any member, tagged, and holds it while paused', async () => {
    const r = await start<RingbufChardev>('ringbuf', 'kbd');
    const s = await socketServer('net');
    const hub = hubOf('hub5', [r, s.chardev]);
    const got: [string, string][] = [];
    hub.on('data', (b: Buffer, id: string) => got.push([id, b.toString()]));
    r.input(Buffer.from('before'));
    expect(got).toEqual([]); // nobody took input yet: held
    hub.resumeInput();
    expect(got).toEqual([['kbd', 'before']]);
    const c = await s.dial();
    c.write('remote');
    await until(() => got.length === 2, 'socket input');
    expect(got[1]).toEqual(['net', 'remote']);

    hub.pauseInput();
    c.write('later');
    r.input(Buffer.from('held'));
    await new Promise((res) => setTimeout(res, 20)); // room for input that must not come
    expect(got.length).toBe(2);
    hub.resumeInput();
    await until(() => got.length === 4, 'held input');
    expect(got.slice(2).sort()).toEqual([
      ['kbd', 'held'],
      ['net', 'later'],
    ]);
    expect(hub.stats().members.map((m) => [m.id, m.bytesIn])).toEqual([
      ['kbd', 10],
      ['net', 11],
    ]);
  });

  it('input=off members are viewers: their input is dropped, never paused', async () => {
    const viewer = await start<RingbufChardev>('ringbuf', 'viewer', { input: 'off' });
    const hub = hubOf('hub6', [viewer]);
    const got: Buffer[] = [];
    hub.on('data', (b: Buffer) => got.push(b));
    viewer.input(Buffer.from('ignored'));
    hub.resumeInput();
    viewer.input(Buffer.from('ignored too'));
    expect(got).toEqual([]);
    expect(viewer.inputPaused).toBe(false);
    expect(hub.stats().members[0]).toMatchObject({ input: false, bytesIn: 0 });
  });
});

describe('hub policies', () => {
  it('lossless (generic port default): a stalled member blocks output and loses nothing', async () => {
    const r = await start<RingbufChardev>('ringbuf', 'fast', { size: '4M' });
    const s = await socketServer('slow');
    const hub = hubOf('hub7', [r, s.chardev]);
    hub.bind("port 'data'", GENERIC_MEMBER_DEFAULTS);
    const c = await s.dial();
    c.pause();
    const blocked = next(hub, 'output-blocked');
    let total = 0;
    for (let i = 0; !hub.outputBlocked && i < 1000; i++) {
      hub.output(pattern(total, 32 * 1024));
      total += 32 * 1024;
      await new Promise((res) => setImmediate(res));
    }
    expect(await blocked).toEqual([true]);
    expect(r.count).toBe(total); // the fast member was not held back
    const unblocked = next(hub, 'output-blocked');
    c.resume();
    await unblocked;
    await until(() => c.bytes().length === total, 'slow member got everything');
    expect(c.bytes().equals(pattern(0, total))).toBe(true);
    expect(r.read(total).equals(pattern(0, total))).toBe(true);
  });

  it('drop (console default): bounded lag, oldest bytes dropped for that member only, counted', async () => {
    const r = await start<RingbufChardev>('ringbuf', 'log', { size: '4M' });
    const s = await socketServer('stalled', { buffer: '64K' });
    const hub = hubOf('hub8', [r, s.chardev]);
    hub.bind("port 'console'", CONSOLE_MEMBER_DEFAULTS);
    const blocks: boolean[] = [];
    hub.on('output-blocked', (b: boolean) => blocks.push(b));
    const c = await s.dial();
    c.pause();
    const total = 3 * 1024 * 1024;
    for (let i = 0; i < total; i += 16 * 1024) {
      hub.output(pattern(i, 16 * 1024));
      if (i % (256 * 1024) === 0) await new Promise((res) => setImmediate(res));
    }
    const st = hub.stats().members.find((m) => m.id === 'stalled')!;
    expect(st.policy).toBe('drop');
    expect(st.drops).toBeGreaterThan(0);
    expect(st.lag).toBeLessThanOrEqual(64 * 1024);
    expect(blocks).toEqual([]); // the guest was never held back
    expect(r.read(total).equals(pattern(0, total))).toBe(true); // the other member lost nothing

    c.resume();
    await until(() => c.bytes().length + st.drops === total, 'stalled member catches up');
    // It got a head of the stream and its tail; the gap between is exactly what it dropped.
    const got = c.bytes();
    let head = 0;
    while (head < got.length && got[head] === head % 251) head++;
    expect(got.subarray(head).equals(pattern(head + st.drops, total - head - st.drops))).toBe(true);
  });

  it('a console port refuses a lossless member with a clear error', async () => {
    const s = await start('ringbuf', 'strict', { policy: 'lossless' });
    const hub = hubOf('hub9', [s]);
    const err = (() => {
      try {
        hub.bind("port 'console'", CONSOLE_MEMBER_DEFAULTS);
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.message).toBe(
      "hub 'hub9': member 'strict' has policy=lossless, which a console port refuses (the guest would stall on console output); use policy=drop",
    );
    // Attached later, the same holds.
    const other = new Hub('hub10');
    defer(() => other.close());
    other.bind("port 'c2'", CONSOLE_MEMBER_DEFAULTS);
    const late = await start('ringbuf', 'late');
    expect(() => other.attach(late, { policy: 'lossless' })).toThrow(/policy=lossless, which a console port refuses/);
    expect(late.owner).toBeUndefined();
  });
});

describe('hub membership', () => {
  it('attaches and detaches at run time', async () => {
    const a = await start<RingbufChardev>('ringbuf', 'a1');
    const hub = hubOf('hub11', [a]);
    hub.output(Buffer.from('one '));
    const b = await start<RingbufChardev>('ringbuf', 'b1');
    hub.attach(b);
    hub.output(Buffer.from('two '));
    hub.detach('a1');
    hub.output(Buffer.from('three'));
    expect(a.read(100).toString()).toBe('one two ');
    expect(b.read(100).toString()).toBe('two three');
    expect(a.owner).toBeUndefined(); // free to join another hub
    const other = hubOf('hub12', [a]);
    expect(other.members().map((m) => m.id)).toEqual(['a1']);
    expect(() => hub.detach('a1')).toThrow(new StateError("hub 'hub11': no member 'a1'"));
  });

  it('gives clear errors: unknown id, in use, stacking, too many', async () => {
    const x = await start('ringbuf', 'x');
    const h1 = hubOf('h1', [x]);
    const common = { logappend: false, timestamp: false, member: {} };
    const build = (chardevs: string[], maxMembers = 64) =>
      Hub.fromConfig({ backend: 'hub', id: 'h2', chardevs, maxMembers, common }, (id) =>
        id === 'h1' ? h1 : id === 'x' ? x : undefined,
      );
    expect(() => build([])).toThrow("hub 'h2': 'chardevs' list is empty");
    expect(() => build(['nope'])).toThrow("hub 'h2': chardevs.0: no chardev 'nope'");
    expect(() => build(['x'])).toThrow("hub 'h2': member 'x' is already used by hub 'h1'");
    expect(() => build(['h1'])).toThrow("hub 'h2': chardevs.0: 'h1' is a hub; hubs cannot be stacked");

    h1.bind("port 'console'", CONSOLE_MEMBER_DEFAULTS);
    expect(() => h1.bind("port 'other'", GENERIC_MEMBER_DEFAULTS)).toThrow(
      "hub 'h1' is already used by port 'console'",
    );

    const small = new Hub('small', { maxMembers: 2 });
    defer(() => small.close());
    const ns = ['n1', 'n2', 'n3'].map((id) => createChardev('null', id, {}));
    small.attach(ns[0]!);
    small.attach(ns[1]!);
    expect(() => small.attach(ns[2]!)).toThrow("hub 'small': too many members (maximum is 2)");
    expect(ns[2]!.owner).toBeUndefined();
  });

  it('takes 64 members by default', () => {
    const hub = new Hub('big');
    defer(() => hub.close());
    for (let i = 0; i < 64; i++) hub.attach(createChardev('null', `n${i}`, {}));
    expect(() => hub.attach(createChardev('null', 'n64', {}))).toThrow('too many members (maximum is 64)');
  });

  it('keeps its own logfile of all guest output', async () => {
    const log = path.join(tmpdir(), 'hub.log');
    const n = createChardev('null', 'quiet', {});
    const hub = hubOf('hublog', [n], { logfile: log });
    hub.output(Buffer.from('seen by nobody\n'));
    hub.close();
    expect(fs.readFileSync(log, 'utf8')).toBe('seen by nobody\n');
  });
});
