// A vhost-user front-end that behaves like QEMU's generic vhost-user device
// (hw/virtio/vhost-user-base.c over hw/virtio/vhost-user.c): the same requests, flags and
// order as recorded from a real QEMU in shared/qemu-rig/qemu-sequence.md. It checks every
// reply the way QEMU does (flags exactly 0x5, request echoed, exact sizes) and records
// anything unexpected in `protocolErrors` so tests can assert the daemon said nothing odd.
import net from 'node:net';
import { close, connectUnix, eventfd, eventfdSignal, sendWithFds, shutdownWrite, socketpair } from './libc.js';
import { GuestMemory, type GuestMemoryOptions } from './memory.js';
import { EventfdPoller } from './poller.js';
import {
  BackendReq,
  F,
  FLAG_NEED_REPLY,
  FLAG_REPLY,
  FLAG_VERSION,
  HEADER_SIZE,
  ProtoF,
  REPLYING,
  Req,
  Status,
  bit,
  configMsg,
  decodeHeader,
  encodeMessage,
  has,
  memRegionMsg,
  memTable,
  readConfigMsg,
  readU64,
  readVringState,
  reqName,
  u64,
  vringAddr,
  vringState,
  type VringAddr,
} from './protocol.js';
import { SplitQueue, type IndirectMode } from './virtqueue.js';

export interface FrontendOptions {
  socketPath: string;
  /** QEMU's num_vqs: queues announced at connect (SET_VRING_CALL/ERR each). */
  numQueues: number;
  /** QEMU's vq_size (64 on 10.2, 1024 on 10.0). Default 256. */
  queueSize?: number;
  memory?: GuestMemoryOptions;
  /** Negotiate REPLY_ACK when offered (default true); without it QEMU uses GET_FEATURES as a barrier. */
  replyAck?: boolean;
  /** Use ADD_MEM_REG when CONFIGURE_MEM_SLOTS is offered (default true), else SET_MEM_TABLE. */
  memSlots?: boolean;
  /** Use GET/SET_STATUS when STATUS is offered (default true). */
  status?: boolean;
  /** Open the backend channel when BACKEND_REQ is offered (default true). */
  backendReq?: boolean;
  /** QEMU >= 10.2: NEED_REPLY on SET_VRING_KICK/CALL/ERR when REPLY_ACK is on (default true). */
  needReplyOnFdRequests?: boolean;
  /** Accept EVENT_IDX / INDIRECT_DESC when offered (defaults true / 'auto'). */
  eventIdx?: boolean;
  indirect?: IndirectMode;
  /** Ring parts in separate allocations (tests ring address translation harder). */
  separateRingParts?: boolean;
  /** How long to wait for a reply before failing (default 5000 ms). */
  replyTimeoutMs?: number;
}

/** Protocol features this front-end knows how to use (QEMU knows more; these are the ones we implement). */
const KNOWN_PROTOCOL = [
  ProtoF.MQ,
  ProtoF.REPLY_ACK,
  ProtoF.BACKEND_REQ,
  ProtoF.CONFIG,
  ProtoF.RESET_DEVICE,
  ProtoF.CONFIGURE_MEM_SLOTS,
  ProtoF.STATUS,
].reduce((m, b) => m | bit(b), 0n);

export interface InitResult {
  features: bigint;
  /** What GET_PROTOCOL_FEATURES offered; `protocolFeatures` is what was agreed. */
  offeredProtocolFeatures: bigint;
  protocolFeatures: bigint;
  queueNum?: number;
  maxMemSlots?: number;
}

/** Ways to bend the start sequence for bad-input tests. */
export interface StartHooks {
  /** Rewrites the SET_VRING_ADDR payload of each queue. */
  vringAddr?: (a: VringAddr) => VringAddr;
}

export interface BackendMessage {
  request: number;
  flags: number;
  payload: Buffer;
}

interface Pending {
  request: number;
  resolve: (payload: Buffer) => void;
  reject: (e: Error) => void;
}

export class VhostUserFrontend {
  readonly mem: GuestMemory;
  readonly queues: SplitQueue<unknown>[] = [];
  /** Anything the backend sent that QEMU would reject or not expect. */
  readonly protocolErrors: string[] = [];
  readonly backendMessages: BackendMessage[] = [];
  /** Resolves when the backend closed the connection (or we did). */
  readonly closed: Promise<void>;
  deviceFeatures = 0n;
  protocolFeatures = 0n; // negotiated
  ackedFeatures = 0n;
  kicks = 0;
  readonly calls: number[];

  private readonly sock: net.Socket;
  private readonly fd: number;
  private readonly kickFds: number[] = [];
  private readonly callFds: number[] = [];
  private readonly ownFds: number[] = [];
  private readonly callHandlers: ((() => void) | undefined)[] = [];
  private backendSock: net.Socket | undefined;
  private memAdded = false;
  private rx: Buffer = Buffer.alloc(0);
  private pending: Pending | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private isClosed = false;
  private readonly opts: Required<Omit<FrontendOptions, 'memory'>>;

  private constructor(opts: FrontendOptions) {
    this.opts = {
      queueSize: 256,
      replyAck: true,
      memSlots: true,
      status: true,
      backendReq: true,
      needReplyOnFdRequests: true,
      eventIdx: true,
      indirect: 'auto',
      separateRingParts: false,
      replyTimeoutMs: 5000,
      ...opts,
    };
    this.calls = new Array(opts.numQueues).fill(0);
    this.fd = connectUnix(opts.socketPath);
    this.mem = new GuestMemory(opts.memory);
    this.sock = new net.Socket({ fd: this.fd, readable: true, writable: false });
    this.closed = new Promise((resolve) =>
      this.sock.once('close', () => {
        this.onClosed();
        resolve();
      }),
    );
    this.sock.on('error', () => {});
    this.sock.on('data', (d: Buffer) => this.onData(d));
  }

  /** Connects to the daemon's vhost-user socket (no messages sent yet). */
  static connect(opts: FrontendOptions): VhostUserFrontend {
    return new VhostUserFrontend(opts);
  }

  get connected(): boolean {
    return !this.isClosed;
  }
  get options(): Readonly<Required<Omit<FrontendOptions, 'memory'>>> {
    return this.opts;
  }
  hasProtocol(b: number): boolean {
    return has(this.protocolFeatures, b);
  }

  // ---- raw transport ----

  /** Sends bytes as they are, with optional fds: for malformed-input tests. */
  sendRaw(bytes: Uint8Array, fds: readonly number[] = []): void {
    sendWithFds(this.fd, bytes, fds);
  }

  /** Half-closes our side: the backend reads EOF (e.g. in the middle of a message). */
  shutdownWrite(): void {
    shutdownWrite(this.fd);
  }

  private onData(d: Buffer): void {
    this.rx = this.rx.length ? Buffer.concat([this.rx, d]) : d;
    while (this.rx.length >= HEADER_SIZE) {
      const h = decodeHeader(this.rx);
      if (this.rx.length < HEADER_SIZE + h.size) break;
      const payload = Buffer.from(this.rx.subarray(HEADER_SIZE, HEADER_SIZE + h.size));
      this.rx = this.rx.subarray(HEADER_SIZE + h.size);
      const p = this.pending;
      if (!p) {
        this.protocolErrors.push(
          `unsolicited message from backend: ${reqName(h.request)} flags 0x${h.flags.toString(16)} size ${h.size}`,
        );
        continue;
      }
      this.pending = undefined;
      if (h.request !== p.request) p.reject(new Error(`reply to ${reqName(p.request)} names ${reqName(h.request)}`));
      else if (h.flags !== (FLAG_VERSION | FLAG_REPLY))
        p.reject(new Error(`reply to ${reqName(p.request)} has flags 0x${h.flags.toString(16)}, QEMU requires 0x5`));
      else p.resolve(payload);
    }
  }

  private onClosed(): void {
    this.isClosed = true;
    const p = this.pending;
    this.pending = undefined;
    p?.reject(new Error(`backend closed the connection while ${reqName(p.request)} waited for its reply`));
  }

  /**
   * Sends one request; waits for its reply when the request has one or NEED_REPLY is set.
   * Requests are serialised like QEMU's (one outstanding at a time). A REPLY_ACK answer other
   * than 0 rejects.
   */
  request(
    request: number,
    payload?: Uint8Array,
    o: { fds?: readonly number[]; needReply?: boolean } = {},
  ): Promise<Buffer | undefined> {
    const run = async (): Promise<Buffer | undefined> => {
      if (this.isClosed) throw new Error(`${reqName(request)}: connection is closed`);
      const flags = FLAG_VERSION | (o.needReply ? FLAG_NEED_REPLY : 0);
      const wantsReply = REPLYING.has(request) || !!o.needReply;
      let reply: Promise<Buffer> | undefined;
      if (wantsReply) {
        reply = new Promise<Buffer>((resolve, reject) => {
          const timer = setTimeout(() => {
            if (this.pending?.request === request) this.pending = undefined;
            reject(new Error(`no reply to ${reqName(request)} within ${this.opts.replyTimeoutMs} ms`));
          }, this.opts.replyTimeoutMs);
          this.pending = {
            request,
            resolve: (b) => {
              clearTimeout(timer);
              resolve(b);
            },
            reject: (e) => {
              clearTimeout(timer);
              reject(e);
            },
          };
        });
      }
      if (reply) reply.catch(() => {}); // handled below; a send error must not leave it dangling
      try {
        this.sendRaw(encodeMessage(request, payload, flags), o.fds);
      } catch (e) {
        if (this.pending?.request === request) this.pending.reject(e as Error);
        throw new Error(`${reqName(request)}: send failed: ${(e as Error).message}`);
      }
      if (!reply) return undefined;
      const b = await reply;
      if (o.needReply && !REPLYING.has(request)) {
        const status = readU64(b);
        if (status !== 0n) throw new Error(`${reqName(request)} failed: backend replied ${status}`);
        return undefined;
      }
      return b;
    };
    const r = this.chain.then(run, run);
    this.chain = r.catch(() => {});
    return r;
  }

  private async getU64(request: number): Promise<bigint> {
    const b = await this.request(request);
    return readU64(b!);
  }

  private ack(): boolean {
    return this.hasProtocol(ProtoF.REPLY_ACK);
  }

  // ---- QEMU's sequences ----

  /** Connect-time sequence of vhost_user_backend_init + vhost_dev_init. */
  async init(): Promise<InitResult> {
    const o = this.opts;
    this.deviceFeatures = await this.getU64(Req.GET_FEATURES);
    const res: InitResult = { features: this.deviceFeatures, offeredProtocolFeatures: 0n, protocolFeatures: 0n };
    if (has(this.deviceFeatures, F.PROTOCOL_FEATURES)) {
      const offered = await this.getU64(Req.GET_PROTOCOL_FEATURES);
      res.offeredProtocolFeatures = offered;
      let mask = KNOWN_PROTOCOL;
      if (!o.replyAck) mask &= ~bit(ProtoF.REPLY_ACK);
      if (!o.memSlots) mask &= ~bit(ProtoF.CONFIGURE_MEM_SLOTS);
      if (!o.status) mask &= ~bit(ProtoF.STATUS);
      if (!o.backendReq) mask &= ~bit(ProtoF.BACKEND_REQ);
      this.protocolFeatures = offered & mask;
      res.protocolFeatures = this.protocolFeatures;
      await this.request(Req.SET_PROTOCOL_FEATURES, u64(this.protocolFeatures));
      if (this.hasProtocol(ProtoF.MQ)) {
        res.queueNum = Number(await this.getU64(Req.GET_QUEUE_NUM));
        if (res.queueNum < o.numQueues)
          throw new Error(`backend supports ${res.queueNum} queues, the device has ${o.numQueues}`);
      }
      if (this.hasProtocol(ProtoF.CONFIGURE_MEM_SLOTS))
        res.maxMemSlots = Number(await this.getU64(Req.GET_MAX_MEM_SLOTS));
      if (this.hasProtocol(ProtoF.BACKEND_REQ)) await this.openBackendChannel();
    }
    await this.request(Req.SET_OWNER);
    await this.getU64(Req.GET_FEATURES);
    // QEMU hands over a *masked* call notifier per queue at init (the real one comes at start).
    const fdReply = this.ack() && o.needReplyOnFdRequests;
    for (let i = 0; i < o.numQueues; i++) {
      const masked = this.newEventfd();
      await this.request(Req.SET_VRING_CALL, u64(i), { fds: [masked], needReply: fdReply });
      const err = this.newEventfd();
      await this.request(Req.SET_VRING_ERR, u64(i), { fds: [err], needReply: fdReply });
    }
    return res;
  }

  private newEventfd(): number {
    const fd = eventfd();
    this.ownFds.push(fd);
    return fd;
  }

  private async openBackendChannel(): Promise<void> {
    const [ours, theirs] = socketpair();
    try {
      await this.request(Req.SET_BACKEND_REQ_FD, undefined, { fds: [theirs], needReply: this.ack() });
    } finally {
      close(theirs);
    }
    const s = new net.Socket({ fd: ours, readable: true, writable: true });
    this.backendSock = s;
    let buf: Buffer = Buffer.alloc(0);
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= HEADER_SIZE) {
        const h = decodeHeader(buf);
        if (buf.length < HEADER_SIZE + h.size) break;
        const payload = Buffer.from(buf.subarray(HEADER_SIZE, HEADER_SIZE + h.size));
        buf = buf.subarray(HEADER_SIZE + h.size);
        this.backendMessages.push({ request: h.request, flags: h.flags, payload });
        if (h.request !== BackendReq.CONFIG_CHANGE_MSG)
          this.protocolErrors.push(`unexpected backend-channel request ${h.request}`);
        if (h.flags & FLAG_NEED_REPLY) s.write(encodeMessage(h.request, u64(0), FLAG_VERSION | FLAG_REPLY));
        for (const l of this.backendListeners) l(h.request, payload);
      }
    });
  }

  private readonly backendListeners: ((request: number, payload: Buffer) => void)[] = [];
  onBackendMessage(l: (request: number, payload: Buffer) => void): void {
    this.backendListeners.push(l);
  }

  /** GET_CONFIG of `size` bytes at offset 0, as QEMU does on every guest config read. */
  async getConfig(size: number): Promise<Buffer> {
    const b = await this.request(Req.GET_CONFIG, configMsg(0, size));
    const c = readConfigMsg(b!);
    if (c.size !== size || c.offset !== 0)
      throw new Error(`GET_CONFIG reply has offset ${c.offset} size ${c.size}, asked 0/${size}`);
    return c.data;
  }

  /**
   * DRIVER_OK: vhost_dev_start for the first `activeQueues` queues (the ones the guest set up).
   * `acked` are the guest's features; PROTOCOL_FEATURES is added back as QEMU does.
   */
  async start(acked: bigint, activeQueues = this.opts.numQueues, hooks: StartHooks = {}): Promise<void> {
    return this.startRings(acked, activeQueues, hooks);
  }

  /**
   * QMP `cont` after `stop`: vhost_dev_start again with the rings the guest already has (the
   * guest's driver never noticed): the same sequence as start(), but each ring keeps its
   * memory and continues from the base GET_VRING_BASE returned.
   */
  async resume(bases: number[]): Promise<void> {
    return this.startRings(this.ackedFeatures, bases.length, {}, bases);
  }

  private async startRings(acked: bigint, activeQueues: number, hooks: StartHooks, bases?: number[]): Promise<void> {
    const o = this.opts;
    this.ackedFeatures = acked;
    const features = acked | (this.deviceFeatures & bit(F.PROTOCOL_FEATURES));
    await this.request(Req.SET_FEATURES, u64(features));
    if (this.hasProtocol(ProtoF.STATUS)) {
      // vhost_user_add_status: read the status, set FEATURES_OK only if it is not set yet (so
      // a cont after a stop, where the device kept it, sends GET_STATUS alone).
      const st = await this.getU64(Req.GET_STATUS);
      const ok = BigInt(Status.FEATURES_OK);
      if ((st & ok) !== ok) await this.request(Req.SET_STATUS, u64(st | ok), { needReply: false });
    }
    const region = this.mem.region();
    if (this.hasProtocol(ProtoF.CONFIGURE_MEM_SLOTS)) {
      // QEMU sends only the difference to the regions the backend already has: nothing on a
      // second start (guest reboot) with the same RAM.
      if (!this.memAdded)
        await this.request(Req.ADD_MEM_REG, memRegionMsg(region), { fds: [this.mem.fd], needReply: this.ack() });
      this.memAdded = true;
    } else {
      await this.request(Req.SET_MEM_TABLE, memTable([region]), { fds: [this.mem.fd], needReply: this.ack() });
    }
    const qopts = {
      eventIdx: o.eventIdx && has(acked, F.RING_EVENT_IDX),
      indirect: has(acked, F.RING_INDIRECT_DESC) ? o.indirect : ('never' as IndirectMode),
      separateParts: o.separateRingParts,
    };
    const fdReply = this.ack() && o.needReplyOnFdRequests;
    for (let i = 0; i < activeQueues; i++) {
      const q = bases ? this.queues[i]! : new SplitQueue<unknown>(this.mem, i, o.queueSize, qopts);
      this.queues[i] = q;
      await this.request(Req.SET_VRING_NUM, vringState(i, o.queueSize));
      await this.request(Req.SET_VRING_BASE, vringState(i, bases ? bases[i]! : 0));
      const a = q.addrs;
      let addr: VringAddr = { index: i, desc: a.desc, used: a.used, avail: a.avail, log: this.mem.gpa(q.usedOff) };
      if (hooks.vringAddr) addr = hooks.vringAddr(addr);
      await this.request(Req.SET_VRING_ADDR, vringAddr(addr));
      // QEMU keeps one host notifier and one guest notifier per queue for the device's life,
      // so a second start sends the same eventfds again.
      const kick = this.kickFds[i] ?? (this.kickFds[i] = this.newEventfd());
      eventfdSignal(kick); // QEMU's host notifier arrives already signalled once
      await this.request(Req.SET_VRING_KICK, u64(i), { fds: [kick], needReply: fdReply });
      let call = this.callFds[i];
      if (call === undefined) {
        call = this.callFds[i] = this.newEventfd();
        EventfdPoller.shared.watch(call, () => {
          this.calls[i]!++;
          try {
            this.callHandlers[i]?.();
          } catch (e) {
            this.protocolErrors.push(`queue ${i} call handler threw: ${String(e)}`);
          }
        });
      }
      await this.request(Req.SET_VRING_CALL, u64(i), { fds: [call], needReply: fdReply });
    }
    for (let i = 0; i < activeQueues; i++) await this.setVringEnable(i, true);
    for (let i = 0; i < activeQueues; i++) {
      await this.request(Req.SET_VRING_CALL, u64(i), { fds: [this.callFds[i]!], needReply: fdReply });
    }
  }

  private async setVringEnable(i: number, on: boolean): Promise<void> {
    if (this.ack()) {
      await this.request(Req.SET_VRING_ENABLE, vringState(i, on ? 1 : 0), { needReply: true });
    } else {
      await this.request(Req.SET_VRING_ENABLE, vringState(i, on ? 1 : 0));
      await this.getU64(Req.GET_FEATURES); // QEMU's barrier when it cannot ask for an ack
    }
  }

  /**
   * vhost_dev_stop, as QEMU 10.0 and 10.2 send it for vhost-user-(test-)device (QMP `stop`, a
   * reset, power-off): disable every ring, then GET_VRING_BASE each; returns the bases. QEMU
   * sends no SET_STATUS 0 for these devices (vhost_user_reset_status only acts when
   * vq_index + nvqs == vq_index_end, and vhost-user-base never sets vq_index_end); other
   * vhost-user devices do when STATUS was negotiated: `statusReset` adds it, as they would.
   */
  async stop(o: { statusReset?: boolean } = {}): Promise<number[]> {
    const n = this.queues.length;
    for (let i = 0; i < n; i++) await this.setVringEnable(i, false);
    const bases: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = readVringState((await this.request(Req.GET_VRING_BASE, vringState(i, 0)))!);
      if (s.index !== i) throw new Error(`GET_VRING_BASE ${i} answered for queue ${s.index}`);
      bases.push(s.num);
    }
    if (o.statusReset && this.hasProtocol(ProtoF.STATUS))
      await this.request(Req.SET_STATUS, u64(0), { needReply: false });
    return bases;
  }

  /** Tells the device about new buffers on queue `i` if it asked for it. */
  kick(i: number): void {
    const q = this.queues[i];
    if (!q || this.isClosed) return;
    if (q.needsKick()) {
      this.kicks++;
      eventfdSignal(this.kickFds[i]!);
    }
  }

  /** Kicks regardless of suppression (e.g. to poke a crafted ring). */
  forceKick(i: number): void {
    this.kicks++;
    eventfdSignal(this.kickFds[i]!);
  }

  onCall(i: number, handler: () => void): void {
    this.callHandlers[i] = handler;
  }

  /** Closes the connection and frees everything; safe to call twice. */
  async close(): Promise<void> {
    if (!this.isClosed) this.sock.destroy();
    this.backendSock?.destroy();
    await this.closed;
    await EventfdPoller.shared.unwatch(this.callFds);
    for (const fd of this.ownFds.splice(0)) close(fd);
    this.mem.close();
  }
}
