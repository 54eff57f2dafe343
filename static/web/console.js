// The console page's script (served as /assets/console.js; xterm.js from the installed
// @xterm packages). It shows one port's console, sends keys (read-write viewers only; the
// server enforces it anyway) and this window's size, and reconnects by itself after a
// network blip or a daemon restart, but not after an operator's web-disconnect (code 4001).
import { Terminal } from '/assets/xterm.mjs';
import { FitAddon } from '/assets/addon-fit.mjs';

const CLOSE_OPERATOR = 4001;
const CLOSE_PORT_GONE = 4004;

const body = document.body;
const vm = body.dataset.vm;
const port = body.dataset.port;
const token = new URLSearchParams(location.search).get('token') ?? '';
const $ = (id) => document.getElementById(id);
$('home').href = `/?token=${encodeURIComponent(token)}`;

const term = new Terminal({ cursorBlink: true, scrollback: 10000, fontSize: 15, allowProposedApi: false });
const fit = new FitAddon();
term.loadAddon(fit);
term.open($('terminal'));
term.focus();

let ws;
let role;
let viewer;
/** A console port has the guest's size; a generic one just fills the window. */
let isConsole = true;
let retries = 0;
let lastSent = '';
let timer;
const encoder = new TextEncoder();

function badge(id, text, cls) {
  const el = $(id);
  el.textContent = text;
  el.className = `badge ${cls ?? ''}`;
}

function wsUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws/vm/${encodeURIComponent(vm)}/port/${encodeURIComponent(port)}?token=${encodeURIComponent(token)}`;
}

function applySize(cols, rows) {
  if (!isConsole) {
    fit.fit();
    badge('size', '');
    return;
  }
  if (cols !== term.cols || rows !== term.rows) term.resize(cols, rows);
  badge('size', `${cols}x${rows}`);
}

/** A read-write viewer tells the server how many cells its window holds. */
function sendSize(force) {
  if (!isConsole) return void fit.fit();
  if (role !== 'read-write' || ws?.readyState !== WebSocket.OPEN) return;
  const d = fit.proposeDimensions();
  if (!d || !Number.isFinite(d.cols) || !Number.isFinite(d.rows) || d.cols < 2 || d.rows < 1) return;
  const s = `${d.cols}x${d.rows}`;
  if (s === lastSent && !force) return;
  lastSent = s;
  ws.send(JSON.stringify({ type: 'resize', cols: d.cols, rows: d.rows }));
}

/** Keys and pastes, in messages well under the server's 64 KiB limit. */
function send(bytes) {
  if (role !== 'read-write' || ws?.readyState !== WebSocket.OPEN) return;
  for (let i = 0; i < bytes.length; i += 16384) ws.send(bytes.subarray(i, i + 16384));
}

term.onData((d) => send(encoder.encode(d)));
term.onBinary((d) => send(Uint8Array.from(d, (c) => c.charCodeAt(0) & 0xff)));

function connect() {
  badge('conn', 'connecting', 'warn');
  ws = new WebSocket(wsUrl());
  ws.binaryType = 'arraybuffer';
  ws.onmessage = (ev) => {
    if (typeof ev.data !== 'string') {
      term.write(new Uint8Array(ev.data));
      return;
    }
    const m = JSON.parse(ev.data);
    switch (m.type) {
      case 'hello':
        retries = 0;
        role = m.role;
        viewer = m.viewer;
        isConsole = m.console !== false;
        lastSent = '';
        term.options.disableStdin = role !== 'read-write';
        badge('role', role === 'read-write' ? 'read-write' : 'read-only', role === 'read-write' ? '' : 'warn');
        badge('guest', `guest: ${m.guestOpen ? 'open' : 'closed'}`, m.guestOpen ? 'ok' : 'warn');
        term.reset();
        applySize(m.cols, m.rows);
        badge('conn', 'connected', 'ok');
        sendSize(true);
        break;
      case 'screen':
        applySize(m.cols, m.rows);
        term.write(m.data);
        break;
      case 'state':
        badge('guest', `guest: ${m.guestOpen ? 'open' : 'closed'}`, m.guestOpen ? 'ok' : 'warn');
        break;
      case 'size':
        applySize(m.cols, m.rows);
        break;
    }
  };
  ws.onclose = (ev) => {
    if (ev.code === CLOSE_OPERATOR || ev.code === CLOSE_PORT_GONE) {
      badge('conn', ev.code === CLOSE_OPERATOR ? 'disconnected by the operator' : 'the port went away', 'bad');
      const a = document.createElement('a');
      a.href = '#';
      a.textContent = 'reconnect';
      a.id = 'reconnect';
      a.onclick = (e) => {
        e.preventDefault();
        a.remove();
        connect();
      };
      $('conn').after(a);
      return;
    }
    // A blip, a daemon restart, a refused attempt: try again, less and less often.
    const delay = Math.min(10_000, 500 * 2 ** retries++);
    badge('conn', `disconnected; retrying in ${Math.round(delay / 1000)} s`, 'bad');
    setTimeout(connect, delay);
  };
}

window.addEventListener('resize', () => {
  clearTimeout(timer);
  timer = setTimeout(() => sendSize(false), 100);
});

// For tests and the screenshot script: the terminal's text, and the connection.
window.vhc = {
  term,
  get role() { return role; },
  get viewer() { return viewer; },
  get open() { return ws?.readyState === WebSocket.OPEN; },
  text() {
    const b = term.buffer.active;
    const lines = [];
    for (let i = 0; i < b.length; i++) lines.push(b.getLine(i)?.translateToString(true) ?? '');
    return lines.join('\n');
  },
};

connect();
