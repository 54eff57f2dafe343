// The web console's options through the real argv / config-file parser.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseArgs } from '../../src/config/load.js';
import { helpText } from '../../src/cli/usage.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const VM = ['--socket', '/tmp/x/vm.sock', '--chardev', 'null,id=n0', '--device', 'virtconsole,chardev=n0'];
const config = (argv: string[]) => {
  const p = parseArgs(argv);
  if (p.action !== 'run') throw new Error(`action ${p.action}`);
  return p.config;
};

describe('--web options', () => {
  it('the embedded default serves the web console on a free loopback port; an explicit configuration has none unless asked', () => {
    expect(config([]).web).toEqual({ host: '127.0.0.1', port: 0, insecure: false, scrollback: 1000, generic: false });
    expect(config(['--web', '8080']).web).toMatchObject({ host: '127.0.0.1', port: 8080 });
    expect(config(VM).web).toBeUndefined();
    expect(helpText()).toMatch(/--web \[HOST:\]PORT/);
  });

  it('flags: address, TLS, insecure, token file, scrollback; mistakes named', () => {
    expect(
      config([
        ...VM,
        '--web',
        '0.0.0.0:8443',
        '--web-cert',
        'c.pem',
        '--web-key',
        'k.pem',
        '--web-scrollback',
        '5000',
        '--web-token-file',
        '/etc/t',
        '--web-generic',
        'on',
      ]).web,
    ).toEqual({
      host: '0.0.0.0',
      port: 8443,
      cert: 'c.pem',
      key: 'k.pem',
      insecure: false,
      tokenFile: '/etc/t',
      scrollback: 5000,
      generic: true,
    });
    expect(config([...VM, '--web', '0.0.0.0:80', '--web-insecure', 'on']).web).toMatchObject({
      host: '0.0.0.0',
      insecure: true,
    });
    expect(() => config([...VM, '--web', '0.0.0.0:80'])).toThrow(
      /not a loopback address, so the web console needs TLS/,
    );
    expect(() => config([...VM, '--web-scrollback', '10'])).toThrow(/need --web/);
    expect(() => config([...VM, '--web', 'x:y'])).toThrow(/--web: 'x:y' has port 'y'/);
    expect(() => config([...VM, '--web', '80', '--web-insecure', 'maybe'])).toThrow(/--web-insecure/);
  });

  it('the config file takes the same keys; a flag overrides the key of the same name only', () => {
    const d = mkdtempSync(join(tmpdir(), 'vhc-webcfg-'));
    dirs.push(d);
    const f = join(d, 'c.toml');
    writeFileSync(
      f,
      'socket = "/tmp/x/vm.sock"\nchardev = ["null,id=n0"]\ndevice = ["virtconsole,chardev=n0"]\nweb = 8080\nweb-scrollback = 200\n',
    );
    expect(config(['--config', f]).web).toMatchObject({ host: '127.0.0.1', port: 8080, scrollback: 200 });
    expect(config(['--config', f, '--web', '127.0.0.1:9090']).web).toMatchObject({ port: 9090, scrollback: 200 });
  });
});
