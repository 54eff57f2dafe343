// Who may use the web console: two bearer tokens (read-write and read-only), compared in
// constant time, never logged; and a brake on repeated bad tokens per remote address.
//
// The tokens are capabilities carried in the URL (`?token=...`): whoever has the read-write
// URL may type into the guest, whoever has the read-only one may watch. They are generated
// at start (192 random bits each) or read from a file, so that a service keeps its URLs
// across restarts.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';

export type Role = 'read-write' | 'read-only';

export interface Tokens {
  readWrite: string;
  readOnly: string;
}

/** 24 random bytes, base64url: 32 URL-safe characters. */
export function generateTokens(): Tokens {
  return { readWrite: randomBytes(24).toString('base64url'), readOnly: randomBytes(24).toString('base64url') };
}

/** At least 16 characters of the URL-safe set, so that a token is never weaker than ~96 bits and needs no escaping. */
const TOKEN = /^[A-Za-z0-9_-]{16,256}$/;

/**
 * A token file: `read-write=TOKEN` and `read-only=TOKEN` lines ('#' comments and blank lines
 * allowed). Errors name the file and the line, never the token.
 */
export function readTokenFile(file: string, option = '--web-token-file'): Tokens {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `${option}: cannot read '${file}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      option,
      file,
    );
  }
  const found: Partial<Record<Role, string>> = {};
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^(read-write|read-only)\s*=\s*(\S*)$/.exec(line);
    const where = `${option}: '${file}' line ${i + 1}`;
    if (!m) throw new ConfigError(`${where}: expected 'read-write=TOKEN' or 'read-only=TOKEN'`, option, file);
    const role = m[1] as Role;
    if (found[role] !== undefined) throw new ConfigError(`${where}: '${role}' is given twice`, option, file);
    if (!TOKEN.test(m[2]!))
      throw new ConfigError(
        `${where}: the ${role} token must be 16 to 256 characters of A-Z a-z 0-9 - _`,
        option,
        file,
      );
    found[role] = m[2]!;
  });
  for (const role of ['read-write', 'read-only'] as const) {
    if (found[role] === undefined)
      throw new ConfigError(`${option}: '${file}' has no '${role}=TOKEN' line`, option, file);
  }
  if (found['read-write'] === found['read-only'])
    throw new ConfigError(`${option}: '${file}': the read-write and read-only tokens must differ`, option, file);
  return { readWrite: found['read-write']!, readOnly: found['read-only']! };
}

/**
 * The role a presented token grants, if any. Both candidates are hashed first, so the
 * comparison takes the same time whatever the length or content of the guess, and both
 * roles are always compared.
 */
export function roleOf(tokens: Tokens, presented: string | null | undefined): Role | undefined {
  if (typeof presented !== 'string' || presented.length === 0 || presented.length > 1024) return undefined;
  const h = (s: string) => createHash('sha256').update(s).digest();
  const guess = h(presented);
  const rw = timingSafeEqual(guess, h(tokens.readWrite));
  const ro = timingSafeEqual(guess, h(tokens.readOnly));
  return rw ? 'read-write' : ro ? 'read-only' : undefined;
}

export interface ThrottleOptions {
  /** Delay after the first bad token from an address; doubles with each further one. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Failures are forgotten this long after an address's last one. */
  forgetMs?: number;
  /** Bad requests from one address waiting for their answer at once; beyond, the connection is dropped. */
  maxPending?: number;
  /** Addresses remembered at once (the oldest are forgotten first). */
  maxAddresses?: number;
}

interface Record_ {
  failures: number;
  last: number;
  pending: number;
}

/**
 * Repeated bad tokens are slowed down: the answer to the n-th bad token from an address comes
 * after base * 2^(n-1) ms (at most maxDelayMs), and at most maxPending such answers wait at
 * once per address. A good token is never delayed, so someone guessing on a shared address
 * (every local user is 127.0.0.1) cannot lock the rightful user out. Memory is bounded.
 */
export class Throttle {
  readonly #o: Required<ThrottleOptions>;
  readonly #by = new Map<string, Record_>();

  constructor(o: ThrottleOptions = {}) {
    this.#o = { baseDelayMs: 250, maxDelayMs: 10_000, forgetMs: 10 * 60_000, maxPending: 8, maxAddresses: 4096, ...o };
  }

  /** Failures recorded for an address (for tests and stats). */
  failures(addr: string): number {
    return this.#fresh(addr)?.failures ?? 0;
  }

  /**
   * Record a bad token from `addr`. Returns the delay before answering, or undefined when
   * too many answers already wait for that address (drop the connection instead).
   * `done()` must be called once the delayed answer has been sent.
   */
  fail(addr: string): { delayMs: number; done: () => void } | undefined {
    let r = this.#fresh(addr);
    if (r === undefined) {
      if (this.#by.size >= this.#o.maxAddresses) this.#by.delete(this.#by.keys().next().value!);
      r = { failures: 0, last: 0, pending: 0 };
    }
    this.#by.delete(addr); // re-insert: the map's order is the least recently failed first
    this.#by.set(addr, r);
    r.failures++;
    r.last = Date.now();
    if (r.pending >= this.#o.maxPending) return undefined;
    r.pending++;
    const rec = r;
    let once = false;
    return {
      delayMs: Math.min(this.#o.maxDelayMs, this.#o.baseDelayMs * 2 ** Math.min(30, r.failures - 1)),
      done: () => {
        if (!once) rec.pending--;
        once = true;
      },
    };
  }

  #fresh(addr: string): Record_ | undefined {
    const r = this.#by.get(addr);
    if (r && r.pending === 0 && Date.now() - r.last > this.#o.forgetMs) {
      this.#by.delete(addr);
      return undefined;
    }
    return r;
  }
}
