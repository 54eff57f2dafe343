// Splits a QMP byte stream into JSON texts.
//
// QMP is not line-based: QEMU's JSON streamer ends a message where its braces balance, so
// clients may send `{...}{...}` or a message over several lines. We do the same by counting
// brackets outside strings. Text that does not open with '{' or '[' can never balance, so it
// is taken up to the end of its line and reported as one bad message; the client stays
// connected and the next line is parsed afresh.

export type Frame = { json: string } | { junk: string } | { tooLong: true };

/** Largest message accepted; QMP messages are small, and a client must not grow our memory without bound. */
export const MAX_MESSAGE = 1 << 20;

export class JsonSplitter {
  private buf = '';
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Index in buf up to which the current message has been scanned. */
  private scanned = 0;
  /** Dropping the rest of an over-long message, up to the next newline. */
  private skipping = false;

  /** Feed text; returns the complete messages it finishes. */
  push(text: string): Frame[] {
    this.buf += text;
    const out: Frame[] = [];
    for (;;) {
      if (this.skipping) {
        const nl = this.buf.indexOf('\n');
        if (nl < 0) {
          this.buf = '';
          return out;
        }
        this.buf = this.buf.slice(nl + 1);
        this.skipping = false;
      }
      if (this.depth === 0 && this.scanned === 0) {
        this.buf = this.buf.replace(/^\s+/, '');
        if (this.buf === '') return out;
        const c = this.buf[0];
        if (c !== '{' && c !== '[') {
          const nl = this.buf.indexOf('\n');
          if (nl < 0) {
            if (this.buf.length > MAX_MESSAGE) {
              this.reset();
              out.push({ tooLong: true });
              this.skipping = true;
            }
            return out;
          }
          out.push({ junk: this.buf.slice(0, nl).trimEnd() });
          this.buf = this.buf.slice(nl + 1);
          continue;
        }
      }
      const end = this.scan();
      if (end < 0) {
        if (this.buf.length > MAX_MESSAGE) {
          this.reset();
          out.push({ tooLong: true });
          this.skipping = true;
          continue;
        }
        return out;
      }
      out.push({ json: this.buf.slice(0, end) });
      this.buf = this.buf.slice(end);
      this.scanned = 0;
    }
  }

  private reset(): void {
    this.buf = '';
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
    this.scanned = 0;
  }

  /** Continue scanning the current message; returns the index just past its end, or -1. */
  private scan(): number {
    for (let i = this.scanned; i < this.buf.length; i++) {
      const c = this.buf[i];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') this.inString = false;
      } else if (c === '"') this.inString = true;
      else if (c === '{' || c === '[') this.depth++;
      else if (c === '}' || c === ']') {
        if (--this.depth === 0) {
          this.scanned = 0;
          return i + 1;
        }
      }
    }
    this.scanned = this.buf.length;
    return -1;
  }
}
