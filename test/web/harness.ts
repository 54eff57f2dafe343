// An in-process web console over real hubs (no device): the hub stands for a console port,
// `output()` plays the guest's output and `input` collects what reaches the guest. For the
// tests of the server's own rules (auth, protocol, flow); the browser tests go through the
// real daemon and the test front-end (daemon.test.ts).
import { GENERIC_MEMBER_DEFAULTS, Hub } from '../../src/hub/hub.js';
import { CONSOLE_MEMBER_DEFAULTS } from '../../src/port/port.js';
import type { WebPort, WebServer as WebServerT } from '../../src/web/server.js';
import { WebServer } from '../../src/web/server.js';
import type { Tokens } from '../../src/web/auth.js';

export const TOKENS: Tokens = { readWrite: 'rw-token-0123456789abcdef', readOnly: 'ro-token-0123456789abcdef' };

export class FakeConsole {
  readonly hub: Hub;
  readonly input: Buffer[] = [];
  readonly resizes: [number, number][] = [];
  open = true;
  cols = 80;
  rows = 24;
  constructor(
    readonly vm: string,
    readonly id: string,
    /** false: a generic port (virtserialport). */
    readonly console = true,
  ) {
    this.hub = new Hub(`port-${id}`, { label: `port '${id}'` });
    this.hub.bind(`port '${id}'`, console ? CONSOLE_MEMBER_DEFAULTS : GENERIC_MEMBER_DEFAULTS);
    this.hub.on('data', (c: Buffer) => this.input.push(c));
    this.hub.resumeInput();
  }
  get typed(): string {
    return Buffer.concat(this.input).toString();
  }
  port(): WebPort {
    return {
      vm: this.vm,
      id: this.id,
      console: this.console,
      guestOpen: () => this.open,
      size: () => ({ cols: this.cols, rows: this.rows }),
      resize: (cols, rows) => {
        this.cols = cols;
        this.rows = rows;
        this.resizes.push([cols, rows]);
      },
      attach: (m) => {
        this.hub.attach(m);
      },
      detach: (id) => this.hub.detach(id),
    };
  }
}

export async function startServer(
  consoles: FakeConsole[],
  o: { scrollback?: number; buffer?: number; cert?: string; key?: string; generic?: boolean } = {},
): Promise<{ server: WebServerT; base: string }> {
  const server = new WebServer(
    { ports: () => consoles.map((c) => c.port()) },
    {
      host: '127.0.0.1',
      port: 0,
      insecure: false,
      scrollback: o.scrollback ?? 1000,
      generic: o.generic ?? false,
      version: 'test',
      tokens: TOKENS,
      ...(o.buffer !== undefined && { buffer: o.buffer }),
      ...(o.cert !== undefined && o.key !== undefined && { cert: o.cert, key: o.key }),
    },
  );
  await server.listen();
  return { server, base: server.baseUrl };
}
