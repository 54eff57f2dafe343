// A model of Linux's virtio_console driver (drivers/char/virtio_console.c) driving the test
// front-end, written from the virtio spec's console section and the driver's documented
// behaviour (shared/reference.md (b)):
//  - negotiates SIZE and MULTIPORT (+ ring features), never EMERG_WRITE;
//  - multiport: reads max_nr_ports, fills control rx with 4096-byte buffers, sends
//    DEVICE_READY(0xffffffff, 1); PORT_ADD fills the port's rx queue, then PORT_READY;
//    CONSOLE_PORT -> PORT_OPEN(1); PORT_NAME = bytes up to NUL; RESIZE recorded raw;
//  - host data for a generic port the guest has not opened is discarded (counted), as Linux does;
//  - control tx and console tx are busy-waited: the model spins on the used ring and does not
//    rely on a call, like put_chars() / __send_control_msg();
//  - single-port mode (no MULTIPORT): port 0 is the console at once, size from config.
// Everything odd the device does is pushed to `anomalies` so tests can assert there is none.
import { EventEmitter } from 'node:events';
import { VhostUserFrontend, type FrontendOptions, type InitResult, type StartHooks } from './frontend.js';
import { F, bit, has, parseConsoleConfig, type ConsoleConfig } from './protocol.js';
import type { SplitQueue } from './virtqueue.js';

export const Ctrl = {
  DEVICE_READY: 0,
  PORT_ADD: 1,
  PORT_REMOVE: 2,
  PORT_READY: 3,
  CONSOLE_PORT: 4,
  RESIZE: 5,
  PORT_OPEN: 6,
  PORT_NAME: 7,
} as const;
export const BAD_ID = 0xffffffff;
const MAX_PORTS = 0x8000; // VIRTCONS_MAX_PORTS

export interface ControlMessage {
  id: number;
  event: number;
  value: number;
  payload: Buffer;
}

export interface ConsoleDriverOptions extends Omit<FrontendOptions, 'numQueues'> {
  /** QEMU's num_vqs (start() requires it): 2 * (max_nr_ports + 1), or 2 for a single-port device. */
  numQueues?: number;
  /** Negotiate MULTIPORT when offered (default true). */
  multiport?: boolean;
  /** Size of rx buffers (Linux: PAGE_SIZE). */
  rxBufSize?: number;
  /** Slot size of tx buffers (largest write chunk; Linux: 32 KiB). */
  txBufSize?: number;
  /** rx buffers posted when a port is added (default: fill the queue). 0 = none. */
  rxFill?: number;
  /** Re-post each rx buffer after its data was taken (default true). */
  rxRepost?: boolean;
  /** How long waits fail after (default 10 s). */
  timeoutMs?: number;
  /** Bends the front-end's start sequence (bad-input tests). */
  startHooks?: StartHooks;
}

/** A fixed-size slot allocator in guest memory for one queue's buffers. */
class BufferPool {
  private readonly free: number[] = [];
  constructor(
    fe: VhostUserFrontend,
    count: number,
    readonly slotSize: number,
  ) {
    const base = fe.mem.alloc(count * slotSize, 4096);
    for (let i = count - 1; i >= 0; i--) this.free.push(base + i * slotSize);
  }
  get available(): number {
    return this.free.length;
  }
  take(): number | undefined {
    return this.free.pop();
  }
  give(off: number): void {
    this.free.push(off);
  }
}

type TxToken = { kind: 'tx'; off: number; done: (len: number) => void };
type RxToken = { kind: 'rx'; off: number; size: number };

export class ConsolePort {
  name: string | undefined;
  console = false;
  hostOpen = false;
  guestOpen = false;
  removed = false;
  /** RESIZE payloads, the two le16 values in the order they came. */
  readonly resizes: [number, number][] = [];
  /** Bytes the host sent while the port was closed on the guest side (Linux throws them away). */
  discardedBytes = 0;
  receivedBytes = 0;
  // Received bytes not yet read: [head, tail) of a buffer that grows by doubling, so a
  // million 1-byte deliveries cost a copy each, not an object each.
  private store = new Uint8Array(64 * 1024);
  private head = 0;
  private tail = 0;
  rxPosted = 0;
  rxRepost: boolean;

  constructor(
    private readonly drv: ConsoleDriver,
    readonly id: number,
  ) {
    this.rxRepost = drv.opts.rxRepost;
  }

  get rxQueue(): number {
    return this.id === 0 ? 0 : 2 + 2 * this.id;
  }
  get txQueue(): number {
    return this.id === 0 ? 1 : 3 + 2 * this.id;
  }

  /** Guest open(): PORT_OPEN(1). Console ports are opened by the driver itself. */
  async open(): Promise<void> {
    this.guestOpen = true;
    if (this.drv.multiport) await this.drv.sendControl(this.id, Ctrl.PORT_OPEN, 1);
  }

  async close(): Promise<void> {
    this.guestOpen = false;
    if (this.drv.multiport) await this.drv.sendControl(this.id, Ctrl.PORT_OPEN, 0);
  }

  /** Posts `n` more rx buffers of `size` bytes (default rxBufSize); returns how many fit. */
  postRx(n: number, size = this.drv.opts.rxBufSize): number {
    return this.drv.postRx(this, n, size);
  }

  /** Everything received and not yet read (and forgets it). */
  take(): Buffer {
    return this.takeN(this.bufferedBytes);
  }

  private takeN(n: number): Buffer {
    const b = Buffer.from(this.store.subarray(this.head, this.head + n));
    this.head += n;
    if (this.head === this.tail) this.head = this.tail = 0;
    return b;
  }

  /** Waits until `n` bytes are there, then takes exactly `n`. */
  async read(n: number, timeoutMs?: number): Promise<Buffer> {
    await this.drv.waitFor(() => this.bufferedBytes >= n, `port ${this.id}: ${n} bytes from the host`, timeoutMs);
    return this.takeN(n);
  }

  get bufferedBytes(): number {
    return this.tail - this.head;
  }

  /** @internal Data from an rx buffer (a view of guest memory: copied here). */
  deliver(data: Uint8Array): void {
    if (!this.console && !this.guestOpen) {
      this.discardedBytes += data.length;
      return;
    }
    this.receivedBytes += data.length;
    if (this.tail + data.length > this.store.length) {
      const live = this.tail - this.head;
      if (live + data.length > this.store.length / 2) {
        const next = new Uint8Array(Math.max(this.store.length * 2, 2 * (live + data.length)));
        next.set(this.store.subarray(this.head, this.tail), 0);
        this.store = next;
      } else {
        this.store.copyWithin(0, this.head, this.tail);
      }
      this.head = 0;
      this.tail = live;
    }
    this.store.set(data, this.tail);
    this.tail += data.length;
  }

  /**
   * Guest write(): `chunkSize`-byte buffers (Linux: up to 32 KiB per write call; hvc: up to
   * PAGE_SIZE). Resolves when the device has returned every buffer. A generic port, like
   * Linux, waits while the host side is closed; a console port never checks and spins.
   */
  async write(data: Uint8Array, o: { chunkSize?: number; ignoreHostOpen?: boolean } = {}): Promise<void> {
    const chunk = o.chunkSize ?? (this.console ? 4096 : this.drv.opts.txBufSize);
    if (this.console) {
      for (let at = 0; at < data.length; at += chunk)
        await this.drv.sendAndSpin(this.txQueue, data.subarray(at, at + chunk));
      return;
    }
    // Post synchronously while the ring has room (one buffer and one kick decision per
    // chunk, as each Linux write() call does); wait only for room or for the host side.
    let pending = 0;
    const onUsed = () => {
      pending--;
    };
    for (let at = 0; at < data.length;) {
      if (!o.ignoreHostOpen && !this.hostOpen)
        await this.drv.waitFor(() => this.hostOpen || this.removed, `port ${this.id}: host side to open`);
      const piece = data.subarray(at, at + chunk);
      if (this.drv.tryPostTx(this.txQueue, piece, onUsed)) {
        pending++;
        at += piece.length;
        continue;
      }
      await this.drv.waitTxRoom(this.txQueue);
    }
    await this.drv.waitFor(() => pending === 0, `port ${this.id}: the device to take all ${data.length} bytes`);
  }
}

export class ConsoleDriver extends EventEmitter {
  readonly fe: VhostUserFrontend;
  readonly ports = new Map<number, ConsolePort>();
  /** Control messages from the device, in order. */
  readonly controlLog: ControlMessage[] = [];
  readonly anomalies: string[] = [];
  readonly opts: Required<
    Pick<ConsoleDriverOptions, 'multiport' | 'rxBufSize' | 'txBufSize' | 'rxFill' | 'rxRepost' | 'timeoutMs'>
  >;
  init!: InitResult;
  config!: ConsoleConfig;
  features = 0n;
  multiport = false;
  private readonly pools = new Map<number, BufferPool>();
  private controlWork: Promise<void> = Promise.resolve();
  private controlTx: Promise<void> = Promise.resolve();

  private readonly startHooks: StartHooks;

  private constructor(opts: ConsoleDriverOptions, numQueues: number) {
    super();
    this.startHooks = opts.startHooks ?? {};
    this.setMaxListeners(0);
    this.opts = {
      multiport: true,
      rxBufSize: 4096,
      txBufSize: 32 * 1024,
      rxFill: Infinity,
      rxRepost: true,
      timeoutMs: 10_000,
      ...stripUndefined({
        multiport: opts.multiport,
        rxBufSize: opts.rxBufSize,
        txBufSize: opts.txBufSize,
        rxFill: opts.rxFill,
        rxRepost: opts.rxRepost,
        timeoutMs: opts.timeoutMs,
      }),
    };
    this.fe = VhostUserFrontend.connect({ ...opts, numQueues });
    void this.fe.closed.then(() => this.emit('change'));
    this.fe.onBackendMessage(() => this.emit('change'));
  }

  /**
   * Connects and brings the device up the way QEMU + Linux do, up to DEVICE_READY (multiport)
   * or the console port (single port). `numQueues` must match the daemon's max ports:
   * 2 * (max_nr_ports + 1), or 2 for a single-port device.
   */
  static async start(opts: ConsoleDriverOptions & { numQueues: number }): Promise<ConsoleDriver> {
    const d = new ConsoleDriver(opts, opts.numQueues);
    try {
      await d.probe();
    } catch (e) {
      await d.close();
      throw e;
    }
    return d;
  }

  private async probe(): Promise<void> {
    this.init = await this.fe.init();
    await this.boot();
  }

  /**
   * Guest reboot on the same connection (QEMU: vhost_dev_stop, then the guest's driver
   * probes again and vhost_dev_start runs with fresh rings). Returns the GET_VRING_BASE
   * values of the stop. Call it while nothing is in flight.
   */
  async reboot(): Promise<number[]> {
    const bases = await this.fe.stop();
    this.generation++;
    for (const p of this.ports.values()) {
      p.guestOpen = false;
      p.hostOpen = false;
    }
    this.ports.clear();
    this.pools.clear();
    this.txWired.clear();
    this.controlWork = Promise.resolve();
    this.controlTx = Promise.resolve();
    await this.boot();
    return bases;
  }

  /**
   * QMP `stop` then `cont` (the VM pauses; the guest's driver never notices): vhost_dev_stop,
   * then vhost_dev_start on the same rings from the bases the stop returned. With
   * `statusReset` the stop ends with SET_STATUS 0 as vhost-user devices other than
   * vhost-user-base send it. Returns the bases. Call it while nothing is in flight.
   */
  async stopCont(o: { statusReset?: boolean } = {}): Promise<number[]> {
    const bases = await this.fe.stop(o);
    await this.fe.resume(bases);
    return bases;
  }

  /** Bumped by reboot(): a spin on a ring of the previous boot gives up. */
  private generation = 0;

  private async boot(): Promise<void> {
    const fe = this.fe;
    const dev = this.init.features;
    if (!has(dev, F.VERSION_1)) throw new Error(`device does not offer VERSION_1 (features 0x${dev.toString(16)})`);
    this.multiport = this.opts.multiport && has(dev, F.CONSOLE_MULTIPORT);
    // QEMU's generic device does not cache config: each guest read is one GET_CONFIG.
    // Linux reads max_nr_ports before the rings exist (multiport); we parse all 12 bytes
    // once so tests can check them, as a guest reading each field would see them.
    const cfgSize = 12;
    if (this.multiport) {
      this.config = parseConsoleConfig(await fe.getConfig(cfgSize));
      const n = this.config.maxNrPorts;
      if (n === 0 || n > MAX_PORTS) throw new Error(`max_nr_ports ${n} is out of range (Linux fails probe)`);
      if (2 * (n + 1) > fe.options.numQueues)
        throw new Error(`max_nr_ports ${n} needs ${2 * (n + 1)} queues, the device has ${fe.options.numQueues}`);
    }
    let want = bit(F.CONSOLE_SIZE) | bit(F.VERSION_1);
    if (this.multiport) want |= bit(F.CONSOLE_MULTIPORT);
    if (fe.options.eventIdx) want |= bit(F.RING_EVENT_IDX);
    if (fe.options.indirect !== 'never') want |= bit(F.RING_INDIRECT_DESC);
    this.features = dev & want;
    const active = this.multiport ? 2 * (this.config.maxNrPorts + 1) : 2;
    await fe.start(this.features, active, this.startHooks);
    if (!this.multiport) {
      // Single port: port 0 is the console from the start; the size comes from config.
      this.config = parseConsoleConfig(await fe.getConfig(cfgSize));
      const p = this.addPort(0);
      p.console = true;
      p.guestOpen = true;
      return;
    }
    fe.onCall(2, () => this.drainControl());
    this.postControlRx();
    await this.sendControl(BAD_ID, Ctrl.DEVICE_READY, 1);
  }

  // ---- buffers ----

  private pool(q: number, slotSize: number): BufferPool {
    let p = this.pools.get(q);
    if (!p) {
      p = new BufferPool(this.fe, this.fe.options.queueSize, slotSize);
      this.pools.set(q, p);
    }
    return p;
  }

  private queue(i: number): SplitQueue<unknown> {
    const q = this.fe.queues[i];
    if (!q) throw new Error(`queue ${i} is not set up`);
    return q;
  }

  private postControlRx(): void {
    const q = this.queue(2);
    const pool = this.pool(2, 4096);
    let off: number | undefined;
    while (q.canAdd() && (off = pool.take()) !== undefined)
      q.add([{ offset: off, len: 4096, writable: true }], { kind: 'rx', off, size: 4096 } satisfies RxToken);
    q.enableCallbacks();
    this.fe.kick(2);
  }

  /** @internal */
  postRx(port: ConsolePort, n: number, size: number): number {
    this.mustBeConnected();
    const qi = port.rxQueue;
    const q = this.queue(qi);
    const pool = this.pool(qi, Math.max(size, this.opts.rxBufSize));
    if (size > pool.slotSize) throw new Error(`rx buffer of ${size} bytes is larger than the pool's ${pool.slotSize}`);
    let posted = 0;
    while (posted < n && q.canAdd()) {
      const off = pool.take();
      if (off === undefined) break;
      q.add([{ offset: off, len: size, writable: true }], { kind: 'rx', off, size } satisfies RxToken);
      posted++;
    }
    port.rxPosted += posted;
    q.enableCallbacks();
    this.fe.onCall(qi, () => this.drainRx(port));
    this.fe.kick(qi);
    // Buffers may have been used between enableCallbacks and now.
    if (q.hasUsed()) this.drainRx(port);
    return posted;
  }

  private drainRx(port: ConsolePort): void {
    if (!this.fe.connected) return;
    const qi = port.rxQueue;
    const q = this.queue(qi);
    const pool = this.pool(qi, this.opts.rxBufSize);
    let repost = 0;
    do {
      let u;
      while ((u = q.getUsed())) {
        const t = u.token as RxToken;
        port.rxPosted--;
        const data = this.fe.mem.bytes.subarray(t.off, t.off + Math.min(u.len, t.size));
        if (port.removed) this.anomalies.push(`port ${port.id}: ${u.len} bytes arrived after PORT_REMOVE`);
        else port.deliver(data);
        pool.give(t.off);
        if (port.rxRepost && !port.removed) repost++;
      }
    } while (q.enableCallbacks());
    this.anomalies.push(...q.anomalies.splice(0));
    if (repost > 0) this.postRx(port, repost, this.opts.rxBufSize);
    this.emit('change');
  }

  /** @internal Posts one tx buffer (waiting for room); resolves once posted, `used` once returned. */
  async postTx(qi: number, data: Uint8Array): Promise<{ used: Promise<number> }> {
    let done!: (len: number) => void;
    const used = new Promise<number>((r) => {
      done = r;
    });
    while (!this.tryPostTx(qi, data, done)) await this.waitTxRoom(qi);
    return { used };
  }

  /** @internal Posts one tx buffer if the ring and the pool have room; `done` runs when it is used. */
  tryPostTx(qi: number, data: Uint8Array, done: (len: number) => void): boolean {
    this.mustBeConnected();
    const q = this.queue(qi);
    const pool = this.pool(qi, this.opts.txBufSize);
    if (data.length > pool.slotSize)
      throw new Error(`tx chunk of ${data.length} bytes exceeds the ${pool.slotSize}-byte slots`);
    if (!this.txWired.has(qi)) {
      this.txWired.add(qi);
      this.fe.onCall(qi, () => this.reapTx(qi));
    }
    if (!q.canAdd() || pool.available === 0) return false;
    const off = pool.take()!;
    this.fe.mem.bytes.set(data, off);
    q.add([{ offset: off, len: data.length, writable: false }], { kind: 'tx', off, done } satisfies TxToken);
    this.fe.kick(qi);
    return true;
  }

  /** @internal Like Linux's blocked port write: waits for a tx interrupt that frees room. */
  async waitTxRoom(qi: number): Promise<void> {
    const q = this.queue(qi);
    const pool = this.pool(qi, this.opts.txBufSize);
    this.reapTx(qi); // also re-enables callbacks
    if (q.canAdd() && pool.available > 0) return;
    await this.waitFor(() => q.canAdd() && pool.available > 0, `queue ${qi}: a free tx buffer`);
  }

  private readonly txWired = new Set<number>();

  // Guest memory is unmapped when the front-end closes: touching it afterwards would crash
  // the test process, so every path into the rings checks first.
  private mustBeConnected(): void {
    if (!this.fe.connected) throw new Error('the front-end connection is closed');
  }

  private reapTx(qi: number): void {
    if (!this.fe.connected) return;
    const q = this.queue(qi);
    const pool = this.pool(qi, this.opts.txBufSize);
    let u;
    let n = 0;
    do {
      while ((u = q.getUsed())) {
        const t = u.token as TxToken;
        pool.give(t.off);
        t.done(u.len);
        n++;
      }
    } while (q.enableCallbacks());
    this.anomalies.push(...q.anomalies.splice(0));
    if (n > 0) this.emit('change');
  }

  /** @internal Console/control tx: post one buffer and spin on the used ring until it is back. */
  async sendAndSpin(qi: number, data: Uint8Array): Promise<void> {
    const gen = this.generation;
    const { used } = await this.postTx(qi, data);
    let back = false;
    void used.then(() => {
      back = true;
    });
    while (!back) {
      if (!this.fe.connected) throw new Error(`queue ${qi}: connection closed while the guest spun on its tx buffer`);
      if (gen !== this.generation) throw new Error(`queue ${qi}: the guest rebooted while it spun on its tx buffer`);
      this.reapTx(qi);
      if (back) break;
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  /** Driver -> device control message (serialised, busy-waited like Linux). */
  sendControl(id: number, event: number, value: number): Promise<void> {
    const msg = Buffer.alloc(8);
    msg.writeUInt32LE(id >>> 0, 0);
    msg.writeUInt16LE(event, 4);
    msg.writeUInt16LE(value, 6);
    const run = () => this.sendAndSpin(3, msg);
    const r = this.controlTx.then(run, run);
    this.controlTx = r.catch(() => {});
    return r;
  }

  // ---- control rx ----

  private drainControl(): void {
    // Linux handles control messages one by one in a work item; replies (PORT_READY, ...)
    // are sent before the next message is looked at.
    this.controlWork = this.controlWork.then(async () => {
      if (!this.fe.connected) return;
      const q = this.queue(2);
      do {
        let u;
        while (this.fe.connected && (u = q.getUsed())) {
          const t = u.token as RxToken;
          const raw = Buffer.from(this.fe.mem.bytes.subarray(t.off, t.off + Math.min(u.len, t.size)));
          q.add([{ offset: t.off, len: 4096, writable: true }], t);
          this.fe.kick(2);
          if (raw.length < 8) {
            this.anomalies.push(`control message of ${raw.length} bytes (needs 8)`);
            continue;
          }
          const m: ControlMessage = {
            id: raw.readUInt32LE(0),
            event: raw.readUInt16LE(4),
            value: raw.readUInt16LE(6),
            payload: raw.subarray(8),
          };
          this.controlLog.push(m);
          try {
            await this.handleControl(m);
          } catch (e) {
            if (this.fe.connected) this.anomalies.push(`handling control event ${m.event}: ${String(e)}`);
          }
          this.emit('change');
        }
      } while (this.fe.connected && q.enableCallbacks());
      this.anomalies.push(...q.anomalies.splice(0));
      this.emit('change');
    });
  }

  private addPort(id: number): ConsolePort {
    const p = new ConsolePort(this, id);
    this.ports.set(id, p);
    const fill = Math.min(this.opts.rxFill, this.fe.options.queueSize);
    if (fill > 0) p.postRx(fill);
    else this.fe.onCall(p.rxQueue, () => this.drainRx(p));
    return p;
  }

  private async handleControl(m: ControlMessage): Promise<void> {
    const port = this.ports.get(m.id);
    if (m.event === Ctrl.PORT_ADD) {
      if (m.id >= this.config.maxNrPorts) {
        this.anomalies.push(`PORT_ADD for id ${m.id} >= max_nr_ports ${this.config.maxNrPorts}`);
        return;
      }
      if (port) {
        this.anomalies.push(`PORT_ADD for existing port ${m.id}`);
        await this.sendControl(m.id, Ctrl.PORT_READY, 1);
        return;
      }
      this.addPort(m.id);
      await this.sendControl(m.id, Ctrl.PORT_READY, 1);
      return;
    }
    if (!port) {
      this.anomalies.push(`control event ${m.event} for unknown port ${m.id}`);
      return;
    }
    switch (m.event) {
      case Ctrl.PORT_REMOVE:
        port.removed = true;
        port.guestOpen = false;
        port.hostOpen = false;
        this.ports.delete(m.id);
        this.removedPorts.push(port);
        break;
      case Ctrl.CONSOLE_PORT:
        if (m.value === 0) break;
        port.console = true;
        port.guestOpen = true;
        await this.sendControl(m.id, Ctrl.PORT_OPEN, 1);
        break;
      case Ctrl.RESIZE:
        if (m.payload.length < 4) {
          this.anomalies.push(`RESIZE for port ${m.id} with ${m.payload.length}-byte payload`);
          break;
        }
        if (!port.console) this.anomalies.push(`RESIZE for non-console port ${m.id} (Linux ignores it)`);
        port.resizes.push([m.payload.readUInt16LE(0), m.payload.readUInt16LE(2)]);
        break;
      case Ctrl.PORT_OPEN:
        port.hostOpen = m.value !== 0;
        break;
      case Ctrl.PORT_NAME: {
        if (port.name !== undefined) break; // Linux keeps the first name
        const nul = m.payload.indexOf(0);
        port.name = m.payload.subarray(0, nul < 0 ? m.payload.length : nul).toString('utf8');
        break;
      }
      default:
        this.anomalies.push(`unknown control event ${m.event} for port ${m.id}`);
    }
  }

  readonly removedPorts: ConsolePort[] = [];

  // ---- waiting ----

  /**
   * Resolves once `pred()` holds, re-checked after every device event; rejects after the
   * timeout (or when the connection closes) with a message naming `what`.
   */
  waitFor(pred: () => boolean, what: string, timeoutMs = this.opts.timeoutMs): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (pred()) {
          cleanup();
          resolve();
        } else if (!this.fe.connected) {
          cleanup();
          reject(new Error(`connection closed while waiting for ${what}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        const seen = this.problems();
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}${seen.length ? `; problems seen: ${seen.join('; ')}` : ''}`,
          ),
        );
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('change', check);
      };
      this.on('change', check);
    });
  }

  /** Waits until exactly the ports in `ids` exist and each has finished its set-up messages. */
  async waitPorts(n: number, settled: (p: ConsolePort) => boolean = () => true): Promise<ConsolePort[]> {
    await this.waitFor(() => this.ports.size >= n && [...this.ports.values()].every(settled), `${n} ports`);
    return [...this.ports.values()].sort((a, b) => a.id - b.id);
  }

  port(id: number): ConsolePort {
    const p = this.ports.get(id);
    if (!p) throw new Error(`no port ${id} (have ${[...this.ports.keys()].join(', ') || 'none'})`);
    return p;
  }

  /** All problems seen: driver-level anomalies plus the front-end's protocol errors. */
  problems(): string[] {
    return [...this.anomalies, ...this.fe.protocolErrors];
  }

  async close(): Promise<void> {
    await this.fe.close();
    this.emit('change');
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
