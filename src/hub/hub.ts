// A port's host side: QEMU's `-chardev hub` (chardev/char-hub.c), and more.
//
// Fan-out: every byte of guest output goes to every connected member, in order. The hub
// keeps the stream (OutputQueue) and each member's position in it, so members may run at
// different speeds: one that took a chunk is never sent it again, one that could not is
// sent it later, and nobody waits for a member that is absent or failed.
// Fan-in: input from any member goes to the guest; while the guest cannot take more the hub
// pauses its members' input, so the data waits in the OS objects instead of being lost.
// Open counting: host-open when the first member connects, closed when the last one leaves
// ("the last one turns off the light").
//
// Beyond QEMU: up to `maxMembers` (64) members instead of 4, attach/detach at run time,
// a policy per member for falling behind, and viewers whose input is ignored:
//  - lossless: the member holds the guest back. Only a generic port can honour that (its
//    guest write just blocks); the hub reports 'output-blocked' and the port stops taking
//    the guest's output until the member catches up.
//  - drop: the member may lag `buffer` bytes; beyond that its oldest bytes are dropped, for
//    it alone, and counted. A console port allows only this (Linux spins on console output,
//    so a stalled console would freeze the guest), with a generous default buffer.
import { EventEmitter } from 'node:events';
import type { Chardev, CommonOptions, MemberOptions, MemberPolicy, WinSize } from '../chardev/chardev.js';
import { Transcript } from '../chardev/transcript.js';
import type { ChardevConfig, HubOptions } from '../chardev/options.js';
import { ConfigError, StateError } from '../errors.js';
import { logger, type Logger } from '../log.js';
import { HubMember, type MemberSettings, type MemberStats } from './member.js';
import { OutputQueue } from './output-queue.js';
import { removeIfOurs } from '../sys/paths.js';
import { DEFAULT_HUB_MAX_MEMBERS } from '../limits.js';

/** Slack of a `drop` member when none is configured: a few screens of a busy boot log. */
export const DEFAULT_DROP_BUFFER = 1024 * 1024;
/** replay= of socket, pty and web members of a console port when not given (generic ports: 0). */
export const DEFAULT_CONSOLE_REPLAY = 16 * 1024;
/** Backends a person attaches to: they get the console's recent output by default. */
const REPLAY_BACKENDS = new Set(['socket', 'pty', 'web']);

/** How a hub is made (a configured hub: Hub.fromConfig; an implicit one: by the VM). */
export interface HubInit {
  maxMembers?: number;
  /** How members' ownership reads in errors; default "hub 'ID'" (an implicit hub may say "port 'x'"). */
  label?: string;
  /** logfile/logappend/timestamp: a transcript of all guest output, whoever is connected. */
  common?: CommonOptions;
}

export type { WinSize };

/**
 * What the port a hub serves asks of the members (the port knows why; the hub only applies
 * it). Until a port binds the hub, GENERIC_MEMBER_DEFAULTS apply.
 */
export interface MemberDefaults {
  /** The policy of a member that does not choose one. */
  policy: MemberPolicy;
  /** Set when the port cannot honour policy=lossless: the reason, for the error message. */
  refuseLossless?: string;
  /** replay= of the members people attach to (socket, pty, web) when they do not choose. */
  replay: number;
}

export const GENERIC_MEMBER_DEFAULTS: Readonly<MemberDefaults> = { policy: 'lossless', replay: 0 };

export interface HubEvents {
  /** First member connected / last member left. */
  open: [open: boolean];
  /** A lossless member is behind / all caught up. */
  'output-blocked': [blocked: boolean];
  /** Input towards the guest. */
  data: [chunk: Buffer, member: string];
  /** A member's terminal size changed. */
  resize: [size: WinSize, member: string];
  /** A member disconnected, failed or was detached: its input that waits for the guest is to be dropped. */
  'member-gone': [member: string];
}

export interface HubStats {
  id: string;
  /** The port this hub serves, if bound. */
  port: string | undefined;
  open: boolean;
  outputBlocked: boolean;
  bytesFromGuest: number;
  bytesToGuest: number;
  members: MemberStats[];
}

export class Hub extends EventEmitter<HubEvents> {
  readonly maxMembers: number;
  readonly label: string;
  readonly #log: Logger;
  readonly #members = new Map<string, HubMember>();
  readonly #queue = new OutputQueue();
  readonly #transcript: Transcript | undefined;
  #open = false;
  #blocked = false;
  #inputPaused = true; // nobody to take input until a port resumes it
  #defaults: Readonly<MemberDefaults> = GENERIC_MEMBER_DEFAULTS;
  #port: string | undefined;
  #size: WinSize | undefined;

  constructor(
    readonly id: string,
    opts: HubInit = {},
  ) {
    super();
    this.maxMembers = opts.maxMembers ?? DEFAULT_HUB_MAX_MEMBERS;
    this.label = opts.label ?? `hub '${id}'`;
    this.#log = logger({ component: 'hub', hub: id });
    if (opts.common?.logfile)
      this.#transcript = new Transcript(
        opts.common.logfile,
        opts.common.logappend,
        opts.common.timestamp,
        opts.common.rotate,
      );
  }

  /**
   * Build a hub from its parsed `--chardev hub,...` options. `lookup` finds the other
   * chardevs (and hubs, to refuse them) by id. On error nothing stays attached.
   */
  static fromConfig(cfg: ChardevConfig<HubOptions>, lookup: (id: string) => Chardev | Hub | undefined): Hub {
    if (cfg.chardevs.length === 0) throw new ConfigError(`hub '${cfg.id}': 'chardevs' list is empty`, 'chardevs.0');
    const hub = new Hub(cfg.id, { maxMembers: cfg.maxMembers, common: cfg.common });
    try {
      cfg.chardevs.forEach((id, i) => {
        const c = lookup(id);
        if (c === undefined)
          throw new ConfigError(`hub '${cfg.id}': chardevs.${i}: no chardev '${id}'`, `chardevs.${i}`, id);
        if (c instanceof Hub)
          throw new ConfigError(
            `hub '${cfg.id}': chardevs.${i}: '${id}' is a hub; hubs cannot be stacked`,
            `chardevs.${i}`,
            id,
          );
        hub.attach(c);
      });
    } catch (err) {
      hub.close();
      throw err;
    }
    return hub;
  }

  get hostOpen(): boolean {
    return this.#open;
  }

  get outputBlocked(): boolean {
    return this.#blocked;
  }

  get inputPaused(): boolean {
    return this.#inputPaused;
  }

  /** The last window size a member (a pty) reported. */
  get windowSize(): WinSize | undefined {
    return this.#size;
  }

  members(): HubMember[] {
    return [...this.#members.values()];
  }

  member(id: string): HubMember | undefined {
    return this.#members.get(id);
  }

  /** Add a member (at start-up or at run time). `opts` override the chardev's own member options. */
  attach(chardev: Chardev, opts: MemberOptions = {}): HubMember {
    if (chardev.closed) throw new StateError(`${this.label}: member '${chardev.id}' is closed`);
    if (chardev.owner !== undefined)
      throw new StateError(`${this.label}: member '${chardev.id}' is already used by ${chardev.owner}`);
    if (this.#members.size >= this.maxMembers)
      throw new StateError(`${this.label}: too many members (maximum is ${this.maxMembers})`);
    const requested = { ...chardev.common.member, ...opts };
    const m = new HubMember(chardev, requested, this.resolve(chardev.id, requested, chardev.backend), this.#queue.head);
    chardev.claim(this.label);
    this.#members.set(chardev.id, m);
    m.on('connected', () => this.memberMoved(m, true));
    m.on('disconnected', () => {
      this.memberMoved(m);
      this.emit('member-gone', m.id);
    });
    m.on('failed', (err: Error) => {
      this.#log.warn({ member: m.id, err: err.message }, 'member failed; the others go on');
      this.memberMoved(m);
      this.emit('member-gone', m.id);
    });
    m.on('writable', () => {
      m.waiting = false;
      this.flush(m);
      this.settle();
    });
    m.on('data', (chunk: Buffer) => this.memberInput(m, chunk));
    m.on('resize', (size: WinSize) => {
      this.#size = size;
      this.emit('resize', size, m.id);
    });
    this.applyInputState(m);
    this.#log.debug({ member: m.id, ...m.settings }, 'member attached');
    if (chardev.windowSize) {
      this.#size = chardev.windowSize;
      this.emit('resize', this.#size, m.id);
    }
    // A chardev attached while already connected starts at the present: replay is for a
    // client that connects (attaching is the operator's act, not the client's).
    this.memberMoved(m);
    return m;
  }

  /** Remove a member; the chardev stays open and may join another hub. */
  detach(id: string): void {
    const m = this.#members.get(id);
    if (!m) throw new StateError(`${this.label}: no member '${id}'`);
    this.#members.delete(id);
    m.unsubscribe();
    m.chardev.pauseInput();
    m.chardev.release(this.label);
    this.#log.debug({ member: id }, 'member detached');
    this.settle();
    this.emit('member-gone', id);
  }

  /** Called by the port seam: which port this hub serves, and what it asks of the members. */
  bind(port: string, defaults: Readonly<MemberDefaults>): void {
    if (this.#port !== undefined && this.#port !== port)
      throw new StateError(`${this.label} is already used by ${this.#port}`);
    if (defaults.refuseLossless !== undefined) {
      for (const m of this.#members.values()) this.refuseLossless(m.id, m.requested, defaults.refuseLossless);
    }
    this.#port = port;
    this.#defaults = defaults;
    for (const m of this.#members.values()) m.settings = this.resolve(m.id, m.requested, m.chardev.backend);
    this.settle();
  }

  unbind(port: string): void {
    if (this.#port !== port) return;
    this.#port = undefined;
    this.#defaults = GENERIC_MEMBER_DEFAULTS;
  }

  /**
   * Guest output, already taken from the guest: the hub keeps it until every member that
   * should get it has. Never refuses; a generic port watches 'output-blocked' instead.
   */
  output(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#queue.push(chunk);
    this.#transcript?.write(chunk);
    for (const m of this.#members.values()) this.flush(m);
    this.settle();
  }

  pauseInput(): void {
    this.#inputPaused = true;
    for (const m of this.#members.values()) this.applyInputState(m);
  }

  resumeInput(): void {
    this.#inputPaused = false;
    for (const m of this.#members.values()) {
      this.applyInputState(m);
      if (this.#inputPaused) return; // a listener paused again while input was handed over
    }
  }

  /** Input the members read and hold back while paused (their chardevs' held input). */
  heldInput(): number {
    let n = 0;
    for (const m of this.#members.values()) if (m.settings.input) n += m.chardev.heldInputBytes;
    return n;
  }

  /** Input the members have not read yet, in their OS objects (FIONREAD). */
  inputWaiting(): number {
    let n = 0;
    for (const m of this.#members.values()) if (m.settings.input) n += Math.max(0, m.chardev.inputWaiting());
    return n;
  }

  stats(): HubStats {
    const head = this.#queue.head;
    const members = this.members().map((m) => m.stats(head));
    return {
      id: this.id,
      port: this.#port,
      open: this.#open,
      outputBlocked: this.#blocked,
      bytesFromGuest: head,
      bytesToGuest: members.reduce((s, m) => s + m.bytesIn, 0),
      members,
    };
  }

  /** SIGHUP: reopen the hub's own `logfile=`. */
  reopenLogs(): void {
    try {
      this.#transcript?.reopen();
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'cannot reopen the log file; keeping the old one');
    }
  }

  /** Detach every member (the chardevs stay open) and close the hub's transcript; `undo` (a failed start) removes its file if this hub created it. */
  close(opts: { undo?: boolean } = {}): void {
    for (const id of [...this.#members.keys()]) this.detach(id);
    this.#transcript?.close();
    if (opts.undo && this.#transcript?.created) removeIfOurs(this.#transcript.path);
  }

  /** Send what a member has not had yet, until it is done or would block. */
  private flush(m: HubMember): void {
    const head = this.#queue.head;
    // An absent or failed member is skipped and kept at the present, so it holds nothing back
    // and, when it comes back, starts with new output rather than stale bytes.
    if (!m.chardev.connected || m.chardev.failure) return m.resetTo(head);
    while (!m.waiting && m.pos < head) {
      const from = m.pos;
      const view = this.#queue.view(from);
      const n = m.chardev.write(view);
      if (m.pos !== from) break; // the write failed or disconnected it; it was reset
      m.pos += n;
      m.bytesOut += n;
      if (n < view.length) m.waiting = true;
    }
  }

  /** After any change: bound drop members, release memory, update open/blocked state. */
  private settle(): void {
    const head = this.#queue.head;
    let tail = head;
    let blocked = false;
    let open = false;
    for (const m of this.#members.values()) {
      open ||= m.chardev.connected;
      // Keep the history the members may replay (never more than that: it is memory).
      if (m.settings.replay > 0) tail = Math.min(tail, Math.max(0, head - m.settings.replay));
      const lag = head - m.pos;
      if (m.settings.policy === 'drop' && lag > m.settings.buffer) {
        m.drops += lag - m.settings.buffer;
        m.pos = head - m.settings.buffer;
      }
      if (m.settings.policy === 'lossless' && m.pos < head) blocked = true;
      tail = Math.min(tail, m.pos);
    }
    this.#queue.trim(tail);
    if (open !== this.#open) {
      this.#open = open;
      this.#log.debug({ open }, open ? 'host side open' : 'host side closed');
      this.emit('open', open);
    }
    if (blocked !== this.#blocked) {
      this.#blocked = blocked;
      this.emit('output-blocked', blocked);
    }
  }

  /**
   * A member connected, disconnected, failed, or was attached: it starts at the present, or
   * (connecting, with replay=) at the start of the last `replay` bytes the hub still holds --
   * at a line start within them if there is one. Replay and live output are one stream from
   * one offset, so there is no gap and no duplicate at the seam.
   */
  private memberMoved(m: HubMember, connecting = false): void {
    m.resetTo(connecting && m.settings.replay > 0 ? this.replayStart(m.settings.replay) : this.#queue.head);
    this.applyInputState(m);
    this.flush(m);
    this.settle();
  }

  private replayStart(size: number): number {
    const head = this.#queue.head;
    const from = Math.max(this.#queue.start, head - size);
    if (from === 0 || from >= head) return from;
    // A whole line first: the byte after the window's first newline (counting the byte just
    // before the window, so a window that starts a line keeps it), unless that is the head.
    for (let pos = from > this.#queue.start ? from - 1 : from; pos < head;) {
      const view = this.#queue.view(pos);
      const nl = view.indexOf(0x0a);
      if (nl >= 0) return pos + nl + 1 < head ? pos + nl + 1 : from;
      pos += view.length;
    }
    return from;
  }

  /** replay=, or the port's default for socket, pty and web members (else 0); at most a drop member's buffer. */
  private replaySize(requested: MemberOptions, backend: string | undefined, policy: string, buffer: number): number {
    const size =
      requested.replay ?? (backend !== undefined && REPLAY_BACKENDS.has(backend) ? this.#defaults.replay : 0);
    return policy === 'drop' ? Math.min(size, buffer) : size;
  }

  private memberInput(m: HubMember, chunk: Buffer): void {
    if (!m.settings.input) return; // a viewer: what it types goes nowhere
    m.bytesIn += chunk.length;
    this.emit('data', chunk, m.id);
  }

  /** Members' input follows the hub's, except viewers, which are always read (and ignored). */
  private applyInputState(m: HubMember): void {
    if (this.#inputPaused && m.settings.input) m.chardev.pauseInput();
    else m.chardev.resumeInput();
  }

  private resolve(id: string, requested: MemberOptions, backend?: string): MemberSettings {
    if (this.#defaults.refuseLossless !== undefined) this.refuseLossless(id, requested, this.#defaults.refuseLossless);
    const policy = requested.policy ?? this.#defaults.policy;
    const buffer = requested.buffer ?? DEFAULT_DROP_BUFFER;
    return {
      policy,
      buffer,
      input: requested.input ?? true,
      replay: this.replaySize(requested, backend, policy, buffer),
    };
  }

  private refuseLossless(id: string, requested: MemberOptions, why: string): void {
    if (requested.policy === 'lossless') {
      throw new ConfigError(
        `${this.label}: member '${id}' has policy=lossless, which ${why}; use policy=drop`,
        'policy',
        'lossless',
      );
    }
  }
}
