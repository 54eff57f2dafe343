import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { chardevFromKeyval, finishVm, portFromKeyval, type VmConfig } from '../../src/config/schema.js';

// The control API validates a run-time change by re-running finishVm on the VM with the change
// applied; these tests pin what that relies on.
function vm(): VmConfig {
  return finishVm({
    id: 'vm1',
    socket: '/s',
    maxPorts: 4,
    chardevs: [
      chardevFromKeyval('null,id=a'),
      chardevFromKeyval('null,id=b'),
      chardevFromKeyval('hub,id=h,chardevs.0=a'),
    ],
    devices: [portFromKeyval('virtconsole,chardev=h'), portFromKeyval('virtserialport,name=x,nr=3')],
  });
}

describe('finishVm on a running VM', () => {
  it('is idempotent: a finished VmConfig passes again unchanged', () => {
    const v = vm();
    expect(finishVm(v)).toEqual(v);
  });

  it('keeps the numbers of existing ports and gives a hot-plugged one the lowest free', () => {
    const v = vm();
    const next = finishVm({ ...v, devices: [...v.devices, portFromKeyval('virtserialport,chardev=b,name=y')] });
    expect(next.devices.map((d) => [d.id, d.nr])).toEqual([
      ['port0', 0],
      ['x', 3],
      ['y', 1],
    ]);
  });

  it('refuses a hot-plugged port that breaks a rule, with the start-up message', () => {
    const v = vm();
    expect(() =>
      finishVm({ ...v, devices: [...v.devices, portFromKeyval('virtserialport,chardev=a')] }, { prefix: "vm 'vm1': " }),
    ).toThrow(
      new ConfigError(
        "vm 'vm1': port 'port1': chardev 'a' is already used by hub 'h'",
        '--device',
        'virtserialport,chardev=a',
      ),
    );
  });

  it('lets a run-time change empty a hub, which a configuration may not do', () => {
    const v = vm();
    const chardevs = v.chardevs.map((c) => (c.id === 'h' ? { ...c, members: [] } : c));
    expect(finishVm({ ...v, chardevs }, { runtime: true }).chardevs[2]!.members).toEqual([]);
    expect(() => finishVm({ ...v, chardevs })).toThrow("hub 'h': no members");
  });

  it('bounds a hub at run time by its max-members', () => {
    const v = finishVm({
      id: 'vm1',
      socket: '/s',
      chardevs: [
        chardevFromKeyval('null,id=a'),
        chardevFromKeyval('null,id=b'),
        chardevFromKeyval('hub,id=h,max-members=1,chardevs.0=a'),
      ],
      devices: [],
    });
    const chardevs = v.chardevs.map((c) => (c.id === 'h' ? { ...c, members: ['a', 'b'] } : c));
    expect(() => finishVm({ ...v, chardevs }, { runtime: true })).toThrow(
      "hub 'h': 2 members, at most 1 (max-members)",
    );
  });

  it("keeps a hub's typed form with its member list: the VM builds from it, nothing re-reads the options", () => {
    const v = finishVm({
      id: 'vm1',
      socket: '/s',
      chardevs: [
        chardevFromKeyval('null,id=a'),
        chardevFromKeyval('null,id=b'),
        chardevFromKeyval('hub,id=h,max-members=3,chardevs.0=a'),
      ],
      devices: [],
    });
    const chardevs = v.chardevs.map((c) => (c.id === 'h' ? { ...c, members: ['a', 'b'] } : c));
    const h = finishVm({ ...v, chardevs }, { runtime: true }).chardevs[2]!;
    expect(h.config).toMatchObject({ id: 'h', backend: 'hub', chardevs: ['a', 'b'], maxMembers: 3 });
    expect(v.chardevs[2]!.config).toMatchObject({ chardevs: ['a'] });
  });

  it('does not share arrays or objects with its input', () => {
    const v = vm();
    const next = finishVm(v);
    next.chardevs[2]!.members!.push('b');
    next.chardevs[0]!.options.x = '1';
    expect(v.chardevs[2]!.members).toEqual(['a']);
    expect(v.chardevs[0]!.options).toEqual({});
  });
});
