// Subscribing so that unsubscribing cannot be forgotten: listen() returns the one function
// that undoes it, and Subscriptions collects those for an object that listens for as long as
// it lives (a port to its device and hub, a hub member to its chardev, a stream link to its
// streams) and lets go of everything at once.
//
// Emitters declare their events as a map from name to argument tuple, the generic form of
// @types/node's EventEmitter (`class Hub extends EventEmitter<HubEvents>`), so a listener's
// arguments are checked against what the emitter sends.
import type { EventEmitter } from 'node:events';

/** Undo one subscription (idempotent). */
export type Dispose = () => void;

/** The event map of an EventEmitter<T>: event name -> listener arguments. */
export type EventsOf<E> = E extends EventEmitter<infer T> ? T : never;

/** Subscribe `fn` to `event` of a typed emitter; the returned function unsubscribes it. */
export function listen<T extends Record<keyof T, unknown[]>, K extends keyof T & string>(
  emitter: EventEmitter<T>,
  event: K,
  fn: (...args: T[K]) => void,
): Dispose;
/** The same for an untyped emitter (a Node stream). */
export function listen(emitter: NodeJS.EventEmitter, event: string, fn: (...args: never[]) => void): Dispose;
export function listen(emitter: NodeJS.EventEmitter, event: string, fn: (...args: never[]) => void): Dispose {
  const listener = fn as (...args: unknown[]) => void;
  emitter.on(event, listener);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    emitter.off(event, listener);
  };
}

/** The subscriptions of one object, undone together. */
export class Subscriptions {
  readonly #disposers: Dispose[] = [];

  /** As listen(), kept until dispose(). */
  listen<T extends Record<keyof T, unknown[]>, K extends keyof T & string>(
    emitter: EventEmitter<T>,
    event: K,
    fn: (...args: T[K]) => void,
  ): void;
  listen(emitter: NodeJS.EventEmitter, event: string, fn: (...args: never[]) => void): void;
  listen(emitter: NodeJS.EventEmitter, event: string, fn: (...args: never[]) => void): void {
    this.#disposers.push(listen(emitter, event, fn));
  }

  /** Undo every subscription made so far (later ones are kept again). */
  dispose(): void {
    for (const d of this.#disposers.splice(0)) d();
  }
}
