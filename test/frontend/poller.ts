// Waits for call eventfds without blocking Node's event loop: one poll() at a time runs on a
// libuv worker thread (koffi async call) over every watched eventfd plus a private wake-up
// eventfd; when it returns, the signalled eventfds are drained and their handlers run on the
// main thread. A round trip costs ~6 us here, and each wake-up handles every queue that was
// signalled, so it does not limit ring throughput. Adding a fd or closing wakes the poll.
import { close, eventfd, eventfdDrain, eventfdSignal, pollAsync } from './libc.js';

export class EventfdPoller {
  private readonly handlers = new Map<number, () => void>();
  private readonly wake = eventfd();
  private running = true;
  private readonly done: Promise<void>;
  private closing: Promise<void> | undefined;

  constructor(private readonly onError: (e: unknown) => void = () => {}) {
    this.done = this.loop();
  }

  watch(fd: number, handler: () => void): void {
    this.handlers.set(fd, handler);
    eventfdSignal(this.wake);
  }

  unwatch(fd: number): void {
    this.handlers.delete(fd);
    eventfdSignal(this.wake);
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const fds = [this.wake, ...this.handlers.keys()];
      const revents = await pollAsync(fds, -1);
      eventfdDrain(this.wake);
      for (let i = 1; i < fds.length && this.running; i++) {
        if (revents[i] === 0) continue;
        const fd = fds[i]!;
        const h = this.handlers.get(fd);
        if (!h) continue;
        eventfdDrain(fd);
        try { h(); } catch (e) { this.onError(e); }
      }
    }
  }

  /** Stops polling; resolves once the worker-thread poll() has returned (fds may then close). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.running = false;
      eventfdSignal(this.wake);
      await this.done;
      close(this.wake);
    })();
    return this.closing;
  }
}
