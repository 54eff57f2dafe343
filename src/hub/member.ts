// One chardev as a member of a hub: where it is in the guest's output stream, how it copes
// with falling behind, and its counters.
import type { Chardev, ChardevEvents, MemberOptions, MemberPolicy } from '../chardev/chardev.js';
import { Subscriptions } from '../events.js';

export interface MemberSettings {
  /** lossless: the port waits for this member. drop: it gets `buffer` bytes of slack, then loses its oldest. */
  policy: MemberPolicy;
  buffer: number;
  /** false: a viewer; what it sends is discarded. */
  input: boolean;
  /** Bytes of past output a (re)connecting member gets first (0: none). */
  replay: number;
}

export interface MemberStats {
  id: string;
  backend: string;
  connected: boolean;
  policy: MemberPolicy;
  input: boolean;
  /** Guest output this member took. */
  bytesOut: number;
  /** Input from this member passed on towards the guest. */
  bytesIn: number;
  /** Guest output this member lost to its drop buffer. */
  drops: number;
  /** Guest output waiting for this member now. */
  lag: number;
  /** The member's hard error, if it failed. */
  failure?: string;
}

export class HubMember {
  /**
   * Offset in the hub's output stream of the next byte this member needs. The stream is one
   * sequence for all members, so a member that took more than another on a retried write
   * is never sent those bytes again, and a slow one never skips any (QEMU keeps the same
   * invariant with its per-backend written counters).
   */
  pos: number;
  /** A write came back short: nothing more is tried until the chardev says 'writable'. */
  waiting = false;
  bytesOut = 0;
  bytesIn = 0;
  drops = 0;
  readonly #subs = new Subscriptions();

  /**
   * @param requested what the configuration asked for (policy may be unset: it depends on
   *   whether the port is a console, which the hub may learn later)
   * @param settings what applies now
   */
  constructor(
    readonly chardev: Chardev,
    readonly requested: MemberOptions,
    public settings: MemberSettings,
    head: number,
  ) {
    this.pos = head;
  }

  get id(): string {
    return this.chardev.id;
  }

  /** Subscribe to the chardev for as long as the member is attached. */
  on<K extends keyof ChardevEvents>(event: K, fn: (...args: ChardevEvents[K]) => void): void {
    this.#subs.listen(this.chardev, event, fn);
  }

  unsubscribe(): void {
    this.#subs.dispose();
  }

  /** Forget anything pending: a member that (re)connects or goes away starts at the present. */
  resetTo(head: number): void {
    this.pos = head;
    this.waiting = false;
  }

  stats(head: number): MemberStats {
    const failure = this.chardev.failure?.message;
    return {
      id: this.id,
      backend: this.chardev.backend,
      connected: this.chardev.connected,
      policy: this.settings.policy,
      input: this.settings.input,
      bytesOut: this.bytesOut,
      bytesIn: this.bytesIn,
      drops: this.drops,
      lag: head - this.pos,
      ...(failure !== undefined && { failure }),
    };
  }
}
