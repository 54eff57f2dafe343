// query-web and web-disconnect on the control socket of a daemon without --web, and the web
// members in query-ports of one with it (no browser needed).
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { qmpError, Rig, until } from '../daemon/util.js';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.dispose();
  rig = undefined;
});

const args = (dir: string, web: string[]) => ({
  args: [
    '--socket',
    `${dir}/vm.sock`,
    '--control',
    `${dir}/ctl.sock`,
    '--chardev',
    'null,id=n0',
    '--device',
    'virtconsole,id=console,chardev=n0',
    ...web,
  ],
  wait: [`${dir}/vm.sock`, `${dir}/ctl.sock`],
});

describe('web console on the control socket', () => {
  it('without --web, query-web and web-disconnect say so', async () => {
    rig = await Rig.start((dir) => args(dir, []));
    const q = await rig.qmp();
    expect((await qmpError(q.execute('query-web'))).desc).toBe(
      'the web console is not enabled (start the daemon with --web)',
    );
    expect((await qmpError(q.execute('web-disconnect', { id: 'web:1' }))).desc).toMatch(/not enabled/);
  });

  it('a viewer is a hub member with its address and role; web-disconnect ends it; a wrong id is named', async () => {
    rig = await Rig.start((dir) => args(dir, ['--web', '127.0.0.1:0']));
    const q = await rig.qmp();
    const web = (await q.execute('query-web')) as { ports: { 'read-only': string }[] };
    const ws = new WebSocket(web.ports[0]!['read-only'].replace(/^http/, 'ws').replace('/vm/', '/ws/vm/'));
    let closed: number | undefined;
    ws.on('close', (code) => {
      closed = code;
    });
    await new Promise((res, rej) => {
      ws.once('open', res);
      ws.once('error', rej);
    });
    type Member = { chardev: string; role?: string; remote?: string };
    const members = async () => ((await q.execute('query-ports')) as { members: Member[] }[])[0]!.members;
    let viewer: Member | undefined;
    for (let i = 0; i < 100 && !viewer; i++) {
      viewer = (await members()).find((m) => m.role === 'read-only');
      if (!viewer) await new Promise((r) => setTimeout(r, 50));
    }
    expect(viewer).toMatchObject({
      chardev: expect.stringMatching(/^web:\d+$/),
      role: 'read-only',
      remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
    });
    expect((await members()).find((m) => m.chardev === 'web:screen')).toMatchObject({ role: 'screen' });
    expect((await qmpError(q.execute('web-disconnect', { id: 'web:999' }))).desc).toBe(
      "no web viewer 'web:999' (query-web lists them)",
    );
    await q.execute('web-disconnect', { id: viewer!.chardev });
    await until(() => closed !== undefined, 'the close');
    expect(closed).toBe(4001);
    expect((await members()).some((m) => m.chardev === viewer!.chardev)).toBe(false);
  });
});
