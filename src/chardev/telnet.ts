// The little telnet a console needs (`telnet=on`): ask the client for character mode with
// the server echoing, strip the client's negotiation from the input, and escape 0xFF (IAC)
// in the output. No options are actually negotiated beyond that.
const IAC = 0xff;
const SB = 250;
const SE = 240;
const WILL = 251;
const DONT = 254;
const ECHO = 1;
const SGA = 3;
const LINEMODE = 34;

/** Sent on connect: the server echoes and suppresses go-ahead; no line mode. */
export const TELNET_GREETING = Buffer.from([IAC, WILL, ECHO, IAC, WILL, SGA, IAC, DONT, LINEMODE]);

export function telnetEscape(data: Uint8Array): Uint8Array {
  if (!data.includes(IAC)) return data;
  const out: number[] = [];
  for (const b of data) {
    if (b === IAC) out.push(IAC, IAC);
    else out.push(b);
  }
  return Buffer.from(out);
}

/** Removes telnet commands from a client's byte stream; keeps its state across chunks. */
export class TelnetFilter {
  #state: 'data' | 'iac' | 'option' | 'sub' | 'sub-iac' = 'data';

  filter(chunk: Buffer): Buffer {
    const out: number[] = [];
    for (const b of chunk) {
      switch (this.#state) {
        case 'data':
          if (b === IAC) this.#state = 'iac';
          else out.push(b);
          break;
        case 'iac':
          if (b === IAC) {
            out.push(IAC);
            this.#state = 'data';
          } else if (b === SB) this.#state = 'sub';
          else if (b >= WILL && b <= DONT) this.#state = 'option';
          else this.#state = 'data'; // a two-byte command (NOP, BRK, ...)
          break;
        case 'option':
          this.#state = 'data';
          break;
        case 'sub':
          if (b === IAC) this.#state = 'sub-iac';
          break;
        case 'sub-iac':
          this.#state = b === SE ? 'data' : 'sub';
          break;
      }
    }
    return Buffer.from(out);
  }
}
