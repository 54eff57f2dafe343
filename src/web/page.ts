// The two HTML pages: the index (VMs and ports with their state) and a port's console. Every
// value is escaped; the console page's behaviour lives in static/web/console.js.
import type { Role } from './auth.js';

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export interface IndexPort {
  vm: string;
  id: string;
  name?: string;
  console: boolean;
  /** Served on the web (console ports; generic ones with --web-generic). */
  served: boolean;
  guestOpen: boolean;
  readWriteViewers: number;
  readOnlyViewers: number;
  /** Links the presented token allows (read-write only with the read-write token). */
  readWrite?: string;
  readOnly?: string;
}

export function indexPage(ports: IndexPort[], role: Role, version: string): string {
  const vms = [...new Set(ports.map((p) => p.vm))];
  const sections = vms.map((vm) => {
    const rows = ports
      .filter((p) => p.vm === vm)
      .map((p) => {
        const links = p.served
          ? [
              p.readWrite && `<a href="${esc(p.readWrite)}">open</a>`,
              p.readOnly && `<a href="${esc(p.readOnly)}">watch (read-only)</a>`,
            ]
              .filter(Boolean)
              .join(' · ')
          : '<span class="muted">generic port: not served (--web-generic on serves it)</span>';
        return (
          `<tr data-port="${esc(p.id)}"><td>${esc(p.id)}</td><td>${esc(p.name ?? '')}</td><td>${p.console ? 'console' : 'generic'}</td>` +
          `<td class="${p.guestOpen ? 'open' : 'closed'}">${p.guestOpen ? 'open' : 'closed'}</td>` +
          `<td>${p.served ? `${p.readWriteViewers} read-write, ${p.readOnlyViewers} read-only` : ''}</td><td>${links}</td></tr>`
        );
      });
    return `<h2>VM '${esc(vm)}'</h2>\n<table><thead><tr><th>port</th><th>name</th><th>kind</th><th>guest</th><th>viewers</th><th></th></tr></thead>\n<tbody>\n${rows.join('\n')}\n</tbody></table>`;
  });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vhost-console</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/console.css"></head>
<body class="index"><h1>vhost-console ${esc(version)}</h1>
<p class="muted">You are ${role === 'read-write' ? 'allowed to type (read-write)' : 'a read-only viewer'}.</p>
${sections.length ? sections.join('\n') : '<p>No ports.</p>'}
</body></html>
`;
}

export function consolePage(p: { vm: string; id: string; name?: string }): string {
  const title = `${p.name ?? p.id} · ${p.vm}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/xterm.css">
<link rel="stylesheet" href="/assets/console.css"></head>
<body class="console" data-vm="${esc(p.vm)}" data-port="${esc(p.id)}">
<header><span id="title"><b>${esc(p.name ?? p.id)}</b> on VM <b>${esc(p.vm)}</b></span>
<span id="guest" class="badge">guest: ?</span><span id="role" class="badge">?</span>
<span id="conn" class="badge">connecting</span><span id="size" class="badge"></span>
<a id="home" href="/">all ports</a></header>
<main id="terminal"></main>
<script type="module" src="/assets/console.js"></script>
</body></html>
`;
}
