// Waits for call eventfds without blocking Node's event loop: one poll() at a time runs on a
// worker thread (koffi async call) over every watched eventfd plus a private wake-up eventfd;
// when it returns, the signalled eventfds are drained and their handlers run on the main
// thread. A round trip costs ~6 us here, and each wake-up handles every queue that was
// signalled, so it does not limit ring throughput.
//
// One poller serves the whole process (`EventfdPoller.shared`): a blocked poll() holds a
// libuv threadpool thread, and one per front-end would exhaust the pool (4 threads) and
// stall fs calls with a handful of VMs. The loop runs only while something is watched, so an
// idle test process can exit.
import { eventfd, eventfdDrain, eventfdSignal, pollAsync } from './libc.js';

export class EventfdPoller {
  static readonly shared = new EventfdPoller();

  private readonly handlers = new Map<number, () => void>();
  private wake: number | undefined;
  private running = false;
  private current: Promise<unknown> | undefined;

  constructor(private readonly onError: (e: unknown) => void = () => {}) {}

  watch(fd: number, handler: () => void): void {
    this.handlers.set(fd, handler);
    this.wake ??= eventfd();
    if (this.running) eventfdSignal(this.wake);
    else {
      this.running = true;
      void this.loop();
    }
  }

  /**
   * Stops watching `fds`; resolves once no poll() that might include them is running, so the
   * caller may close them (a closed fd number could be reused while a poll still names it).
   */
  async unwatch(fds: readonly number[]): Promise<void> {
    for (const fd of fds) this.handlers.delete(fd);
    if (this.wake !== undefined && this.running) eventfdSignal(this.wake);
    await this.current?.catch(() => {});
  }

  private async loop(): Promise<void> {
    const wake = this.wake!;
    while (this.handlers.size > 0) {
      const fds = [wake, ...this.handlers.keys()];
      const poll = pollAsync(fds, -1);
      this.current = poll;
      let revents: number[];
      try {
        revents = await poll;
      } catch (e) {
        this.onError(e);
        break;
      } finally {
        this.current = undefined;
      }
      eventfdDrain(wake);
      for (let i = 1; i < fds.length; i++) {
        if (revents[i] === 0) continue;
        const fd = fds[i]!;
        const h = this.handlers.get(fd);
        if (!h) continue; // unwatched while we polled: the fd may already be someone else's
        eventfdDrain(fd);
        try {
          h();
        } catch (e) {
          this.onError(e);
        }
      }
    }
    this.running = false;
  }
}
