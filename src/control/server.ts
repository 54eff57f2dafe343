// The QMP-shaped control server on a unix socket.
//
// Protocol, as QEMU's monitor speaks it:
//   server: {"QMP": {"version": {...}, "capabilities": []}}          greeting on connect
//   client: {"execute": "qmp_capabilities"}                           required first
//   client: {"execute": CMD, "arguments": {...}, "id": ANY}
//   server: {"return": ..., "id": ANY} | {"error": {"class": ..., "desc": ...}, "id": ANY}
//   server: {"event": NAME, "data": {...}, "timestamp": {"seconds": S, "microseconds": US}}
// A bad message gets an error reply and the connection stays usable. Each client's commands
// run one at a time, in order, so replies come back in the order of the requests.

import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { ConfigError, StateError } from '../errors.js';
import { logger, type Logger } from '../log.js';
import { COMMANDS, checkArgs, checkCapabilities, type CommandContext } from './commands.js';
import { JsonSplitter, MAX_MESSAGE } from './framing.js';
import { QmpError, type ControlEvents, type ControlTarget, type QmpErrorClass } from './target.js';
import { peerCred } from '../sys/libc.js';

export interface ControlServerOptions {
  path: string;
  /** Permission bits of the socket (default 0o600: only the daemon's user may manage it). */
  mode?: number;
  /** An already-listening socket at `path` (systemd socket activation): served as is, never removed. */
  fd?: number;
  target: ControlTarget;
  /** For the greeting: 'major.minor.micro'. */
  version: string;
  log?: Logger;
}

interface Client {
  socket: Socket;
  /** For the audit trail: a number per connection since start, and the peer's pid/uid (SO_PEERCRED). */
  id: number;
  who: { client: number; 'peer-pid'?: number; 'peer-uid'?: number };
  negotiated: boolean;
  /** The tail of this client's command chain. */
  queue: Promise<void>;
}

type Reply = Record<string, unknown>;

export class ControlServer {
  private server: Server | undefined;
  private readonly clients = new Set<Client>();
  private readonly log: Logger;
  private nextClient = 1;

  constructor(private readonly opts: ControlServerOptions) {
    this.log = opts.log ?? logger({ component: 'control' });
  }

  get path(): string {
    return this.opts.path;
  }

  /** Clients currently connected (negotiated or not). */
  get clientCount(): number {
    return this.clients.size;
  }

  /** Listen on the socket. A stale socket file left by a dead daemon is replaced; a live one is an error. */
  async listen(): Promise<void> {
    const fd = this.opts.fd;
    if (fd === undefined) await removeStaleSocket(this.opts.path);
    const server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // Bind under a umask that leaves the socket 0600 from its first instant; a wider mode is
      // granted by chmod afterwards, never a narrower one too late. (bind happens inside listen().)
      const old = process.umask(0o177);
      try {
        server.listen(fd !== undefined ? { fd } : this.opts.path, () => {
          server.off('error', reject);
          resolve();
        });
      } finally {
        process.umask(old);
      }
    }).catch((e: NodeJS.ErrnoException) => {
      throw new StateError(`control socket '${this.opts.path}': ${e.message}`);
    });
    if (fd === undefined && this.opts.mode !== undefined && this.opts.mode !== 0o600)
      chmodSync(this.opts.path, this.opts.mode);
    server.on('error', (e) => this.log.error({ err: e }, 'control socket error'));
    this.server = server;
    this.log.info({ path: this.opts.path }, 'control API listening');
  }

  /** Disconnect every client, stop listening and remove the socket file. */
  async close(): Promise<void> {
    for (const c of this.clients) c.socket.destroy();
    this.clients.clear();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Send an event to every client that has completed capabilities negotiation. */
  emitEvent<K extends keyof ControlEvents>(event: K, data: ControlEvents[K]): void {
    const t = performance.timeOrigin * 1000 + Math.floor(performance.now() * 1000);
    const msg = { event, data, timestamp: { seconds: Math.floor(t / 1e6), microseconds: Math.floor(t % 1e6) } };
    for (const c of this.clients) if (c.negotiated) send(c, msg);
  }

  private accept(socket: Socket): void {
    const id = this.nextClient++;
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    const cred = fd !== undefined && fd >= 0 ? peerCred(fd) : undefined;
    const who = cred === undefined ? { client: id } : { client: id, 'peer-pid': cred.pid, 'peer-uid': cred.uid };
    const client: Client = { socket, id, who, negotiated: false, queue: Promise.resolve() };
    this.log.debug(who, 'control client connected');
    this.clients.add(client);
    socket.setEncoding('utf8');
    const splitter = new JsonSplitter();
    const [major = 0, minor = 0, micro = 0] = this.opts.version.split('.').map((x) => parseInt(x, 10) || 0);
    send(client, {
      QMP: {
        version: { qemu: { major, minor, micro }, package: `vhost-console ${this.opts.version}` },
        capabilities: [],
      },
    });
    socket.on('data', (text: string) => {
      for (const frame of splitter.push(text)) {
        client.queue = client.queue
          .then(() => this.handle(client, frame))
          .catch((e) => this.log.error({ err: e }, 'control: unexpected failure'));
      }
    });
    socket.on('error', (e) => this.log.debug({ err: e }, 'control client error'));
    socket.on('close', () => {
      this.clients.delete(client);
      this.log.debug(who, 'control client disconnected');
    });
  }

  private async handle(client: Client, frame: ReturnType<JsonSplitter['push']>[number]): Promise<void> {
    if (!('json' in frame)) {
      send(
        client,
        error(
          'GenericError',
          'tooLong' in frame
            ? `JSON parse error, message longer than ${MAX_MESSAGE} bytes`
            : `JSON parse error, invalid input '${frame.junk.slice(0, 80)}'`,
        ),
      );
      return;
    }
    let msg: unknown;
    try {
      msg = JSON.parse(frame.json);
    } catch (e) {
      send(client, error('GenericError', `JSON parse error, ${(e as Error).message}`));
      return;
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
      send(client, error('GenericError', 'QMP input must be a JSON object'));
      return;
    }
    const req = msg as Record<string, unknown>;
    const id = 'id' in req ? { id: req.id } : {};
    const after: (() => void)[] = [];
    const reply = await this.execute(client, req, after);
    send(client, { ...reply, ...id });
    // Events that QEMU sends after the reply (DEVICE_DELETED after device_del's return).
    for (const fn of after) fn();
    if (req.execute === 'quit' && 'return' in reply) {
      // Reply first, as QEMU does; the daemon's shutdown then closes this connection.
      client.socket.write('', () => this.opts.target.quit());
    }
  }

  private async execute(client: Client, req: Record<string, unknown>, after: (() => void)[]): Promise<Reply> {
    for (const key of Object.keys(req)) {
      if (key !== 'execute' && key !== 'arguments' && key !== 'id')
        return error('GenericError', `QMP input member '${key}' is unexpected`);
    }
    const name = req.execute;
    if (name === undefined) return error('GenericError', "QMP input lacks member 'execute'");
    if (typeof name !== 'string') return error('GenericError', "QMP input member 'execute' must be a string");
    const args = req.arguments ?? {};
    if (args === null || typeof args !== 'object' || Array.isArray(args))
      return error('GenericError', "QMP input member 'arguments' must be an object");
    try {
      if (name === 'qmp_capabilities') {
        if (client.negotiated)
          return error('CommandNotFound', 'Capabilities negotiation is already complete, command ignored');
        checkCapabilities(args as Record<string, unknown>);
        client.negotiated = true;
        return { return: {} };
      }
      if (!client.negotiated)
        return error('CommandNotFound', "Expecting capabilities negotiation with 'qmp_capabilities'");
      const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
      if (command === undefined) return error('CommandNotFound', `The command ${name} has not been found`);
      const ctx: CommandContext = {
        target: this.opts.target,
        emit: (event, data) => this.emitEvent(event, data),
        afterReply: (fn) => after.push(fn),
        version: this.opts.version,
      };
      const reply = await this.run(client, name, command, args as Record<string, unknown>, ctx);
      return reply;
    } catch (e) {
      return this.failure(name, e);
    }
  }

  /** Run a command; one that changes state leaves an info line (the audit trail), whatever its outcome. */
  private async run(
    client: Client,
    name: string,
    command: (typeof COMMANDS)[string],
    args: Record<string, unknown>,
    ctx: CommandContext,
  ): Promise<Reply> {
    let reply: Reply;
    try {
      checkArgs(args, command.args);
      const result = await command.run(args, ctx);
      reply = { return: result ?? {} };
    } catch (e) {
      reply = this.failure(name, e);
    }
    if (command.audit === undefined) {
      this.log.debug({ command: name }, 'control command done');
    } else {
      const logged = command.audit === true ? args : command.audit(args);
      const failed = reply.error as { desc: string } | undefined;
      const w = client.who;
      const by = `client ${w.client}${w['peer-pid'] === undefined ? '' : ` (pid ${w['peer-pid']}, uid ${w['peer-uid']})`}`;
      this.log.info(
        { ...w, command: name, arguments: logged, ...(failed && { error: failed.desc }) },
        `${name} by ${by}${failed ? `, refused: ${failed.desc}` : ''}`,
      );
    }
    return reply;
  }

  private failure(name: string, e: unknown): Reply {
    if (e instanceof QmpError) return error(e.errorClass, e.message);
    if (e instanceof ConfigError || e instanceof StateError) return error('GenericError', e.message);
    // A bug or an unexpected failure below: report it, keep serving.
    this.log.error({ err: e, command: name }, 'control command failed');
    return error('GenericError', `${name}: ${(e as Error)?.message ?? String(e)}`);
  }
}

function error(cls: QmpErrorClass, desc: string): Reply {
  return { error: { class: cls, desc } };
}

function send(client: Client, msg: unknown): void {
  if (!client.socket.destroyed) client.socket.write(`${JSON.stringify(msg)}\r\n`);
}

/** Remove `path` if it is a socket nobody listens on; refuse if it is live or not a socket. */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // absent
  }
  if (!isSocket) throw new StateError(`control socket '${path}': the path exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new StateError(`control socket '${path}' is in use by a running process`);
  unlinkSync(path);
}
