// The web console: one HTTP(S) + WebSocket server for every VM's console ports.
//
//  GET /?token=T                          index: VMs, ports, state, links
//  GET /vm/VM/port/PORT?token=T           a port's console page
//  GET /assets/NAME                       static files (xterm.js & co. from node_modules; no token)
//  WebSocket /ws/vm/VM/port/PORT?token=T  the console itself
//
// Each WebSocket is a hub member of the port (WebMember) for as long as it is open, so the
// hub's rules hold: every viewer sees the same output in the same order, a slow one loses
// its own oldest bytes (counted) and holds nobody back. A port's screen is kept server-side
// (ScreenMember) and sent first to each new viewer.
//
// The rest of the daemon is seen through WebSource/WebPort only: the ports, a way to attach
// and detach a hub member, the guest-open state, and the console size.
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Chardev } from '../chardev/chardev.js';
import { ConfigError, StateError } from '../errors.js';
import { logger, type Logger } from '../log.js';
import { generateTokens, readTokenFile, roleOf, Throttle, type Role, type Tokens } from './auth.js';
import { isLoopback, type WebConfig } from './config.js';
import { DEFAULT_WEB_BUFFER, WebMember } from './member.js';
import { consolePage, indexPage, type IndexPort } from './page.js';
import { ScreenMember } from './screen.js';

/** One port of one VM, as the web console needs it. */
export interface WebPort {
  vm: string;
  /** The port's device id. */
  id: string;
  /** Its PORT_NAME, if any. */
  name?: string;
  console: boolean;
  guestOpen(): boolean;
  /** The console size the guest has now. */
  size(): { cols: number; rows: number };
  /** Give the guest a new console size (RESIZE). */
  resize(cols: number, rows: number): void;
  /** Make a chardev a member of the port's hub / remove it. */
  attach(member: Chardev): void;
  detach(memberId: string): void;
}

export interface WebSource {
  /** Every port of every VM, in configuration order (read again whenever needed). */
  ports(): WebPort[];
}

export interface WebServerOptions extends WebConfig {
  version: string;
  /** Tokens to use instead of generated ones or the token file (tests). */
  tokens?: Tokens;
  /** Slack of each browser (bytes of guest output it may lag before losing the oldest). */
  buffer?: number;
}

export interface WebViewerInfo {
  id: string;
  vm: string;
  port: string;
  role: Role;
  remote: string;
  'connected-at': string;
  /** The viewer whose window size the guest follows. */
  active: boolean;
}

export interface WebPortInfo {
  vm: string;
  port: string;
  name?: string;
  'guest-open': boolean;
  'read-write': string;
  'read-only': string;
  viewers: number;
}

export interface WebInfo {
  url: string;
  host: string;
  port: number;
  tls: boolean;
  ports: WebPortInfo[];
  viewers: WebViewerInfo[];
}

/** Browsers' sizes are clamped to this before they reach the guest. */
const MAX_COLS = 1000;
const MAX_ROWS = 500;
/** A burst of window resizes reaches the guest as one RESIZE after this quiet time. */
const RESIZE_SETTLE_MS = 40;
/** Largest WebSocket message accepted (a paste is split by the browser's xterm into small writes). */
const MAX_MESSAGE = 64 * 1024;
const MAX_CONNECTIONS = 512;
/** Snapshots of one port's screen are at least this far apart, and at least 4x their cost
 *  (so that viewers connecting in a loop take at most a fifth of the event loop). */
const SNAPSHOT_GAP_MS = 250;
/** Longest wait for the screen to be idle (caught up with the output) before a snapshot is
 *  taken anyway: under a flood, a new viewer's screen may then miss a little. */
const IDLE_WAIT_MS = 2000;
/** Viewers of one port waiting for their first screen at once. */
const MAX_PENDING = 64;
/** Close code: ended by the operator (web-disconnect); the page does not reconnect by itself. */
export const CLOSE_OPERATOR = 4001;
/** Close code: the port went away (unplugged). */
export const CLOSE_PORT_GONE = 4004;

interface Viewer {
  member: WebMember;
  state: PortState;
  since: Date;
  /** A hub member yet (it joins at the next snapshot of the port's screen). */
  attached: boolean;
  /** The browser's window size in cells (read-write viewers report it). */
  want?: { cols: number; rows: number };
}

interface PortState {
  port: WebPort;
  /** The port's screen for late viewers: console ports only (and only if the hub had room). */
  screen: ScreenMember | undefined;
  viewers: Set<Viewer>;
  /** Viewers waiting for the next snapshot, when they join the hub. */
  pending: Viewer[];
  passTimer?: NodeJS.Timeout;
  lastPass: number;
  /** The read-write viewer whose size the guest follows: the last to connect, type or resize. */
  active?: Viewer;
  sizeTimer?: NodeJS.Timeout;
  /** The size last announced to the viewers. */
  shown: { cols: number; rows: number };
}

const key = (vm: string, id: string) => `${vm}\0${id}`;

export class WebServer {
  readonly #log: Logger = logger({ component: 'web' });
  readonly #o: WebServerOptions;
  readonly #tokens: Tokens;
  readonly #throttle = new Throttle();
  readonly #http: Server;
  readonly #wss: WebSocketServer;
  readonly #ports = new Map<string, PortState>();
  readonly #viewers = new Map<string, Viewer>();
  readonly #assets: Map<string, { file: string; type: string }>;
  #nextId = 1;
  #refusedLog = { last: 0, suppressed: 0 };
  #port = 0;
  #closed = false;

  constructor(
    readonly source: WebSource,
    opts: WebServerOptions,
  ) {
    this.#o = opts;
    this.#tokens = opts.tokens ?? (opts.tokenFile !== undefined ? readTokenFile(opts.tokenFile) : generateTokens());
    this.#assets = assetTable();
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      // Whatever a request holds, it must not take the daemon down.
      try {
        this.#request(req, res);
      } catch (err) {
        this.#log.warn({ err: (err as Error).message }, 'web request failed');
        this.#reply(res, 500, 'internal error');
      }
    };
    if (opts.cert !== undefined && opts.key !== undefined) {
      this.#http = createHttpsServer(
        { cert: readPem(opts.cert, '--web-cert'), key: readPem(opts.key, '--web-key') },
        handler,
      );
    } else {
      this.#http = createHttpServer(handler);
    }
    this.#http.maxConnections = MAX_CONNECTIONS;
    this.#http.headersTimeout = 10_000;
    this.#http.requestTimeout = 30_000;
    this.#http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      try {
        this.#upgrade(req, socket, head);
      } catch (err) {
        this.#log.warn({ err: (err as Error).message }, 'web socket upgrade failed');
        socket.destroy();
      }
    });
    this.#http.on('clientError', (_err, socket: Duplex) => socket.destroy());
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE, perMessageDeflate: false });
  }

  get tls(): boolean {
    return this.#o.cert !== undefined;
  }

  /** Bind and listen; resolves with the port (the chosen one when 0 was asked). Then follows the source's ports. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) =>
        reject(
          new StateError(`web console: cannot listen on ${this.#o.host}:${this.#o.port}: ${err.code ?? err.message}`),
        );
      this.#http.once('error', onError);
      this.#http.listen(this.#o.port, this.#o.host, () => {
        this.#http.off('error', onError);
        resolve();
      });
    });
    const a = this.#http.address();
    this.#port = typeof a === 'object' && a !== null ? a.port : this.#o.port;
    this.#http.on('error', (err) => this.#log.error({ err: err.message }, 'web server error'));
    this.refresh();
    this.#log.info({ host: this.#o.host, port: this.#port, tls: this.tls }, 'web console listening');
    return this.#port;
  }

  /** The origin users reach the server at (a wildcard address is shown as the host name). */
  get baseUrl(): string {
    const wildcard = this.#o.host === '0.0.0.0' || this.#o.host === '::';
    const h = wildcard ? hostname() : this.#o.host;
    return `${this.tls ? 'https' : 'http'}://${h.includes(':') ? `[${h}]` : h}:${this.#port}`;
  }

  /** A port's console URL for a role, token included. */
  url(vm: string, port: string, role: Role): string {
    return `${this.baseUrl}${pagePath(vm, port)}?token=${role === 'read-write' ? this.#tokens.readWrite : this.#tokens.readOnly}`;
  }

  /** The index URL for a role. */
  indexUrl(role: Role): string {
    return `${this.baseUrl}/?token=${role === 'read-write' ? this.#tokens.readWrite : this.#tokens.readOnly}`;
  }

  /**
   * Follow the source's ports: keep a screen on every console port, and end the viewers of
   * ports that went away. Call after ports are plugged or unplugged.
   */
  refresh(): void {
    if (this.#closed) return;
    const now = new Map(
      this.source
        .ports()
        .filter((p) => p.console || this.#o.generic)
        .map((p) => [key(p.vm, p.id), p]),
    );
    for (const [k, st] of this.#ports) {
      if (now.get(k) !== st.port && !(now.has(k) && samePort(now.get(k)!, st.port))) this.#dropPort(k, st);
    }
    for (const [k, p] of now) {
      if (this.#ports.has(k)) continue;
      const size = p.size();
      let screen: ScreenMember | undefined;
      if (p.console) {
        screen = new ScreenMember('web:screen', this.#o.scrollback, size);
        void screen.start();
        try {
          p.attach(screen);
        } catch (err) {
          this.#log.warn(
            { vm: p.vm, port: p.id, err: (err as Error).message },
            'cannot keep a screen for this port; late viewers start blank',
          );
          void screen.close();
          screen = undefined;
        }
      }
      const st: PortState = { port: p, screen, viewers: new Set(), pending: [], lastPass: 0, shown: size };
      screen?.screenEvents.on('output', () => this.#followSize(st));
      this.#ports.set(k, st);
    }
  }

  /** The guest opened or closed a port: tell its viewers. */
  portOpen(vm: string, id: string, open: boolean): void {
    const st = this.#ports.get(key(vm, id));
    if (st) this.#broadcast(st, { type: 'state', guestOpen: open });
  }

  /** query-web */
  info(): WebInfo {
    return {
      url: this.baseUrl,
      host: this.#o.host,
      port: this.#port,
      tls: this.tls,
      ports: [...this.#ports.values()].map(({ port: p, viewers }) => ({
        vm: p.vm,
        port: p.id,
        ...(p.name !== undefined && { name: p.name }),
        'guest-open': p.guestOpen(),
        'read-write': this.url(p.vm, p.id, 'read-write'),
        'read-only': this.url(p.vm, p.id, 'read-only'),
        viewers: viewers.size,
      })),
      viewers: [...this.#viewers.values()].map((v) => this.#viewerInfo(v)),
    };
  }

  /** What query-ports adds to a web member: its remote address and role. */
  memberInfo(memberId: string): { remote: string; role: Role | 'screen' } | undefined {
    const v = this.#viewers.get(memberId);
    if (v) return { remote: v.member.remote, role: v.member.role };
    if (memberId === 'web:screen') return { remote: '-', role: 'screen' };
    return undefined;
  }

  /** web-disconnect: end one viewer (its page does not reconnect by itself). */
  disconnect(id: string): void {
    const v = this.#viewers.get(id);
    if (!v) throw new StateError(`no web viewer '${id}' (query-web lists them)`);
    this.#log.info({ viewer: id, vm: v.state.port.vm, port: v.state.port.id }, 'viewer disconnected by the operator');
    v.member.ws.close(CLOSE_OPERATOR, 'disconnected by the operator');
    this.#endViewer(v);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const v of [...this.#viewers.values()]) {
      v.member.ws.close(1001, 'the daemon is stopping');
      this.#endViewer(v);
    }
    for (const [k, st] of [...this.#ports]) this.#dropPort(k, st);
    this.#wss.close();
    await new Promise<void>((resolve) => {
      this.#http.close(() => resolve());
      this.#http.closeAllConnections();
    });
  }

  // --- HTTP ------------------------------------------------------------------------------

  #request(req: IncomingMessage, res: ServerResponse): void {
    const u = parseUrl(req.url);
    if (u === undefined) return this.#reply(res, 400, 'bad request');
    if (!this.#hostAllowed(req.headers.host))
      return this.#reply(res, 403, 'this server answers to a loopback address only');
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.#reply(res, 405, 'only GET', { Allow: 'GET, HEAD' });
    if (u.pathname.startsWith('/assets/')) return this.#asset(u.pathname.slice('/assets/'.length), res);
    if (u.pathname === '/favicon.ico') return this.#reply(res, 404, 'not found');
    this.#authorize(
      req,
      u.searchParams.get('token'),
      (role) => {
        if (role === undefined)
          return this.#reply(
            res,
            401,
            'a valid token is required: use a URL the daemon printed at start, or query-web',
          );
        if (u.pathname === '/') return this.#html(res, indexPage(this.#indexPorts(role), role, this.#o.version));
        const m = /^\/vm\/([^/]+)\/port\/([^/]+)$/.exec(u.pathname);
        const st = m ? this.#ports.get(key(decode(m[1]!), decode(m[2]!))) : undefined;
        if (!st) return this.#reply(res, 404, 'no such console port (the index lists them)');
        this.#html(
          res,
          consolePage({ vm: st.port.vm, id: st.port.id, ...(st.port.name !== undefined && { name: st.port.name }) }),
        );
      },
      () => res.destroy(),
    );
  }

  /** A refusal, logged at most once a second whoever sends them: the log is bounded too. */
  #refused(fields: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    if (now - this.#refusedLog.last < 1000) {
      this.#refusedLog.suppressed++;
      return;
    }
    const suppressed = this.#refusedLog.suppressed;
    this.#log.info({ ...fields, ...(suppressed > 0 && { suppressed }) }, msg);
    this.#refusedLog = { last: now, suppressed: 0 };
  }

  /** Check a token; a bad one is answered late (see Throttle), or the connection dropped. */
  #authorize(
    req: IncomingMessage,
    token: string | null,
    then: (role: Role | undefined) => void,
    drop: () => void,
  ): void {
    const role = roleOf(this.#tokens, token);
    if (role !== undefined) return then(role);
    const addr = req.socket.remoteAddress ?? '?';
    const t = this.#throttle.fail(addr);
    this.#refused(
      { remote: addr, path: parseUrl(req.url)?.pathname, token: token === null ? 'none' : 'wrong' },
      'web request refused: bad token',
    );
    if (t === undefined) return drop();
    const onClose = () => {
      clearTimeout(timer);
      t.done();
    };
    const timer = setTimeout(() => {
      req.socket.off('close', onClose);
      t.done();
      then(undefined);
    }, t.delayMs);
    req.socket.once('close', onClose);
  }

  #indexPorts(role: Role): IndexPort[] {
    const counts = new Map<string, [number, number]>();
    for (const v of this.#viewers.values()) {
      const k = key(v.state.port.vm, v.state.port.id);
      const c = counts.get(k) ?? [0, 0];
      c[v.member.role === 'read-write' ? 0 : 1]++;
      counts.set(k, c);
    }
    return this.source.ports().map((p) => {
      const c = counts.get(key(p.vm, p.id)) ?? [0, 0];
      const rel = (r: Role) =>
        `${pagePath(p.vm, p.id)}?token=${r === 'read-write' ? this.#tokens.readWrite : this.#tokens.readOnly}`;
      return {
        vm: p.vm,
        id: p.id,
        ...(p.name !== undefined && { name: p.name }),
        console: p.console,
        served: this.#ports.has(key(p.vm, p.id)),
        guestOpen: p.guestOpen(),
        readWriteViewers: c[0],
        readOnlyViewers: c[1],
        ...(this.#ports.has(key(p.vm, p.id)) && role === 'read-write' && { readWrite: rel('read-write') }),
        ...(this.#ports.has(key(p.vm, p.id)) && { readOnly: rel('read-only') }),
      };
    });
  }

  #asset(name: string, res: ServerResponse): void {
    const a = this.#assets.get(name);
    if (!a) return this.#reply(res, 404, 'not found');
    let body: Buffer;
    try {
      body = readFileSync(a.file);
    } catch (err) {
      this.#log.error({ asset: name, err: (err as Error).message }, 'web asset missing');
      return this.#reply(res, 500, 'asset missing');
    }
    res.writeHead(200, {
      'Content-Type': a.type,
      'Content-Length': body.length,
      'Cache-Control': 'no-cache',
      'X-Content-Type-Options': 'nosniff',
    });
    res.end(body);
  }

  #html(res: ServerResponse, body: string): void {
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      // The page's URL carries the token: never pass it on, never frame the page.
      'Referrer-Policy': 'no-referrer',
      'X-Frame-Options': 'DENY',
      'X-Content-Type-Options': 'nosniff',
      'Content-Security-Policy':
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    });
    res.end(body);
  }

  #reply(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', ...headers });
    res.end(`${text}\n`);
  }

  // --- WebSocket -------------------------------------------------------------------------

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const refuse = (status: number, text: string) => {
      if (socket.destroyed) return;
      socket.end(
        `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text) + 1}\r\n\r\n${text}\n`,
      );
    };
    const u = parseUrl(req.url);
    const m = u && /^\/ws\/vm\/([^/]+)\/port\/([^/]+)$/.exec(u.pathname);
    if (!u || !m) return refuse(404, 'Not Found');
    if (!this.#hostAllowed(req.headers.host)) return refuse(403, 'Forbidden');
    // A browser always sends Origin: a page from another site must not drive the console
    // with a token it somehow holds (cross-site WebSocket hijacking). Non-browser clients
    // send none, and need the token all the same.
    const origin = req.headers.origin;
    if (origin !== undefined && !this.#sameOrigin(origin, req.headers.host)) {
      this.#refused(
        { remote: req.socket.remoteAddress, origin: origin.slice(0, 200) },
        'web socket refused: foreign Origin',
      );
      return refuse(403, 'Forbidden');
    }
    this.#authorize(
      req,
      u.searchParams.get('token'),
      (role) => {
        if (role === undefined) return refuse(401, 'Unauthorized');
        const st = this.#ports.get(key(decode(m[1]!), decode(m[2]!)));
        if (!st) return refuse(404, 'Not Found');
        this.#wss.handleUpgrade(req, socket, head, (ws) => this.#connect(ws, st, role, req));
      },
      () => socket.destroy(),
    );
  }

  /**
   * On a loopback address, only loopback names are accepted in Host: a page of another site
   * whose name an attacker points at 127.0.0.1 (DNS rebinding) is refused before any token
   * is looked at.
   */
  #hostAllowed(host: string | undefined): boolean {
    if (!isLoopback(this.#o.host)) return true;
    if (host === undefined) return false;
    const name = host.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
    return isLoopback(name);
  }

  #sameOrigin(origin: string, host: string | undefined): boolean {
    try {
      const o = new URL(origin);
      return host !== undefined && o.host === host && o.protocol === (this.tls ? 'https:' : 'http:');
    } catch {
      return false;
    }
  }

  #connect(ws: WebSocket, st: PortState, role: Role, req: IncomingMessage): void {
    if (this.#closed || this.#ports.get(key(st.port.vm, st.port.id)) !== st)
      return void ws.close(CLOSE_PORT_GONE, 'the port went away');
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    const id = `web:${this.#nextId++}`;
    const member = new WebMember(id, ws, role, remote, this.#o.buffer ?? DEFAULT_WEB_BUFFER);
    if (st.pending.length >= MAX_PENDING) return void ws.close(1013, 'too many viewers connecting at once; try again');
    const v: Viewer = { member, state: st, since: new Date(), attached: false };
    void member.start();
    st.viewers.add(v);
    st.pending.push(v);
    this.#viewers.set(id, v);
    this.#log.info({ viewer: id, vm: st.port.vm, port: st.port.id, role, remote }, 'web viewer connected');

    ws.on('message', (data: RawData, isBinary: boolean) => this.#message(v, data, isBinary));
    ws.on('close', () => this.#endViewer(v));
    ws.on('error', () => this.#endViewer(v));

    const size = st.port.size();
    this.#send(v, {
      type: 'hello',
      vm: st.port.vm,
      port: st.port.id,
      ...(st.port.name !== undefined && { name: st.port.name }),
      viewer: id,
      role,
      console: st.port.console,
      guestOpen: st.port.guestOpen(),
      cols: size.cols,
      rows: size.rows,
    });
    this.#schedulePass(st);
  }

  /**
   * New viewers join the hub together, at a moment the port's screen is idle, right after
   * one snapshot of it: each continues exactly where its screen ends, and a crowd of
   * viewers costs one serialisation.
   */
  #schedulePass(st: PortState): void {
    if (st.passTimer) return;
    const screen = st.screen;
    if (!screen) {
      // Nothing to snapshot (a generic port): viewers join at once, with the live stream.
      st.passTimer = setTimeout(() => {
        st.passTimer = undefined;
        this.#pass(st);
      }, 0);
      return;
    }
    const gap = Math.max(SNAPSHOT_GAP_MS, 4 * screen.lastCost);
    st.passTimer = setTimeout(
      () => {
        let done = false;
        const run = () => {
          if (done) return;
          done = true;
          clearTimeout(fallback);
          st.passTimer = undefined;
          this.#pass(st);
        };
        const fallback = setTimeout(run, IDLE_WAIT_MS);
        st.passTimer = fallback;
        screen.whenIdle(run);
      },
      Math.max(0, st.lastPass + gap - Date.now()),
    );
  }

  #pass(st: PortState): void {
    if (this.#closed || this.#ports.get(key(st.port.vm, st.port.id)) !== st) return;
    st.lastPass = Date.now();
    const joining = st.pending.splice(0).filter((v) => this.#viewers.has(v.member.id));
    if (joining.length === 0) return;
    const size = st.port.size();
    st.shown = size;
    st.screen?.setSize(size.cols, size.rows);
    const screen = st.screen?.snapshot() ?? '';
    for (const v of joining) {
      try {
        st.port.attach(v.member);
      } catch (err) {
        this.#log.warn({ vm: st.port.vm, port: st.port.id, err: (err as Error).message }, 'web viewer refused');
        v.member.ws.close(1013, (err as Error).message.slice(0, 120));
        this.#endViewer(v);
        continue;
      }
      v.attached = true;
      this.#send(v, { type: 'screen', data: screen, cols: size.cols, rows: size.rows });
      v.member.ready();
    }
  }

  #message(v: Viewer, data: RawData, isBinary: boolean): void {
    if (!this.#viewers.has(v.member.id)) return;
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (isBinary) {
      // Enforced here, whatever the page does: a read-only viewer's keys go nowhere (the hub
      // would discard them too: the member has input=off).
      // Keys sent before the viewer saw its screen (and joined the hub) are dropped too.
      if (v.member.role !== 'read-write' || buf.length === 0 || !v.attached) return;
      this.#activate(v);
      v.member.input(buf);
      return;
    }
    let msg: unknown;
    try {
      msg = JSON.parse(buf.toString('utf8'));
    } catch {
      return;
    }
    if (typeof msg !== 'object' || msg === null) return;
    const m = msg as { type?: unknown; cols?: unknown; rows?: unknown };
    if (m.type === 'resize' && v.member.role === 'read-write') {
      const cols = Number(m.cols);
      const rows = Number(m.rows);
      if (!Number.isInteger(cols) || !Number.isInteger(rows) || cols < 1 || rows < 1) return;
      v.want = { cols: Math.min(cols, MAX_COLS), rows: Math.min(rows, MAX_ROWS) };
      this.#activate(v);
    }
  }

  /**
   * The multi-viewer rule: the guest's console size follows the most recently active
   * read-write viewer (the last to type or to report its window size, which a page does
   * when it connects and when its window changes). Read-only viewers never change it.
   */
  #activate(v: Viewer): void {
    const st = v.state;
    st.active = v;
    const want = v.want;
    if (!want || !st.port.console) return; // a generic port has no terminal size
    const now = st.port.size();
    if (want.cols === now.cols && want.rows === now.rows) return;
    if (st.sizeTimer) return; // a resize is on its way; it reads `active` when it fires
    st.sizeTimer = setTimeout(() => {
      st.sizeTimer = undefined;
      const a = st.active;
      if (!a?.want || !this.#viewers.has(a.member.id)) return;
      const cur = st.port.size();
      if (a.want.cols === cur.cols && a.want.rows === cur.rows) return;
      this.#log.debug({ viewer: a.member.id, cols: a.want.cols, rows: a.want.rows }, 'console resized by a web viewer');
      st.port.resize(a.want.cols, a.want.rows);
      this.#followSize(st);
    }, RESIZE_SETTLE_MS);
  }

  /** The guest's size changed (a web viewer, a pty member, console-resize): tell the viewers, resize the screen. */
  #followSize(st: PortState): void {
    const s = st.port.size();
    if (s.cols === st.shown.cols && s.rows === st.shown.rows) return;
    st.shown = s;
    st.screen?.setSize(s.cols, s.rows);
    this.#broadcast(st, { type: 'size', cols: s.cols, rows: s.rows });
  }

  #endViewer(v: Viewer): void {
    const id = v.member.id;
    if (!this.#viewers.delete(id)) return;
    const st = v.state;
    st.viewers.delete(v);
    if (st.active === v) st.active = undefined;
    const waiting = st.pending.indexOf(v);
    if (waiting >= 0) st.pending.splice(waiting, 1);
    v.member.gone();
    if (v.attached) {
      try {
        st.port.detach(id);
      } catch {
        // the port's hub went first (unplugged)
      }
    }
    void v.member.close();
    this.#log.info({ viewer: id, vm: st.port.vm, port: st.port.id }, 'web viewer left');
  }

  #dropPort(k: string, st: PortState): void {
    for (const v of [...st.viewers]) {
      v.member.ws.close(CLOSE_PORT_GONE, 'the port went away');
      this.#endViewer(v);
    }
    if (st.sizeTimer) clearTimeout(st.sizeTimer);
    if (st.passTimer) clearTimeout(st.passTimer);
    if (st.screen) {
      try {
        st.port.detach(st.screen.id);
      } catch {
        // its hub is gone already
      }
      void st.screen.close();
    }
    this.#ports.delete(k);
  }

  #send(v: Viewer, msg: object): void {
    if (v.member.ws.readyState === v.member.ws.OPEN) v.member.ws.send(JSON.stringify(msg));
  }

  #broadcast(st: PortState, msg: object): void {
    for (const v of st.viewers) this.#send(v, msg);
  }

  #viewerInfo(v: Viewer): WebViewerInfo {
    return {
      id: v.member.id,
      vm: v.state.port.vm,
      port: v.state.port.id,
      role: v.member.role,
      remote: v.member.remote,
      'connected-at': v.since.toISOString(),
      active: v.state.active === v,
    };
  }
}

function pagePath(vm: string, port: string): string {
  return `/vm/${encodeURIComponent(vm)}/port/${encodeURIComponent(port)}`;
}

/** A path segment, or '' (matching nothing) when its escapes are malformed. */
function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return '';
  }
}

function parseUrl(url: string | undefined): URL | undefined {
  try {
    return new URL(url ?? '/', 'http://x');
  } catch {
    return undefined;
  }
}

function samePort(a: WebPort, b: WebPort): boolean {
  return a.vm === b.vm && a.id === b.id && a.console === b.console;
}

function readPem(file: string, option: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(
      `${option}: cannot read '${file}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      option,
      file,
    );
  }
}

/** The files the pages use: xterm.js from the installed packages, ours from static/web. */
function assetTable(): Map<string, { file: string; type: string }> {
  const require = createRequire(import.meta.url);
  const pkg = (name: string) => dirname(require.resolve(`${name}/package.json`));
  const ours = fileURLToPath(new URL('../../static/web/', import.meta.url));
  const js = 'text/javascript; charset=utf-8';
  const css = 'text/css; charset=utf-8';
  return new Map([
    ['xterm.mjs', { file: join(pkg('@xterm/xterm'), 'lib', 'xterm.mjs'), type: js }],
    ['xterm.css', { file: join(pkg('@xterm/xterm'), 'css', 'xterm.css'), type: css }],
    ['addon-fit.mjs', { file: join(pkg('@xterm/addon-fit'), 'lib', 'addon-fit.mjs'), type: js }],
    ['console.js', { file: join(ours, 'console.js'), type: js }],
    ['console.css', { file: join(ours, 'console.css'), type: css }],
  ]);
}

/** The start-up lines for a person: per console port, a URL to type and one to watch. */
export function webBannerLines(web: WebServer): string[] {
  // The URLs carry the tokens: they go to stdout for whoever started the daemon, never to the log.
  const out = [`vhost-console: web console index: ${web.indexUrl('read-write')}`];
  for (const p of web.info().ports) {
    out.push(`vhost-console: web console for VM '${p.vm}' port '${p.port}': ${p['read-write']}`);
    out.push(`vhost-console: web console for VM '${p.vm}' port '${p.port}' (read-only): ${p['read-only']}`);
  }
  return out;
}
