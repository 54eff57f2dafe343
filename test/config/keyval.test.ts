import { describe, expect, it } from 'vitest';
import { KeyvalError, escapeValue, formatKeyval, parseBool, parseKeyval, takeList } from '../../src/config/keyval.js';

const params = (text: string, implied?: string) => Object.fromEntries(parseKeyval(text, implied).params);

describe('parseKeyval', () => {
  it('reads the implied first key and the parameters in order', () => {
    const kv = parseKeyval('socket,id=s0,path=/run/x,server=on', 'backend');
    expect(kv.implied).toBe('socket');
    expect([...kv.params]).toEqual([
      ['id', 's0'],
      ['path', '/run/x'],
      ['server', 'on'],
    ]);
  });

  it('accepts the implied key spelled out', () => {
    expect(parseKeyval('id=p,backend=pty', 'backend')).toEqual({
      implied: 'pty',
      params: new Map([['id', 'p']]),
      flags: [],
    });
  });

  it('turns ,, into a literal comma, in values and in the implied value', () => {
    expect(params('file,id=f,path=/tmp/a,,b,,,,c', 'backend')).toEqual({ id: 'f', path: '/tmp/a,b,,c' });
    expect(parseKeyval('we,,ird,id=x', 'backend').implied).toBe('we,ird');
    expect(params('path=,,', undefined)).toEqual({ path: ',' });
  });

  it('keeps = inside a value and allows an empty value', () => {
    expect(params('a=b=c,d=')).toEqual({ a: 'b=c', d: '' });
  });

  it("returns elements without '=' after the first as flags, in order (QEMU's short-form booleans)", () => {
    const kv = parseKeyval('socket,id=s,path=/x,server,nowait', 'backend');
    expect([...kv.params]).toEqual([
      ['id', 's'],
      ['path', '/x'],
    ]);
    expect(kv.flags).toEqual(['server', 'nowait']);
    // Without an implied key, the first element too.
    expect(parseKeyval('server,id=s').flags).toEqual(['server']);
    expect(parseKeyval('socket,id=s', 'backend').flags).toEqual([]);
  });

  it('parses lists and takeList returns them in index order', () => {
    const kv = parseKeyval('hub,id=h,chardevs.1=b,chardevs.0=a,chardevs.2=c', 'backend');
    expect(takeList(kv.params, 'chardevs')).toEqual(['a', 'b', 'c']);
    expect([...kv.params.keys()]).toEqual(['id']);
    expect(takeList(kv.params, 'none')).toEqual([]);
  });

  const errors: [string, string | undefined, string][] = [
    ['', 'backend', 'empty'],
    [',id=x', 'backend', 'missing backend'],
    ['id=x', 'backend', 'missing backend: the text must start with it'],
    ['=pty', 'backend', 'empty parameter name at position 1'],
    ['pty,id=x,backend=file', 'backend', "backend is given twice ('pty' and 'file')"],
    ['backend=,id=x', 'backend', 'empty backend'],
    ['pty,id=x,', 'backend', "trailing ',' (write ',,' for a comma inside a value)"],
    ['socket,id=s,server,server', 'backend', "parameter 'server' is given more than once"],
    ['socket,id=s,nowait,', 'backend', "trailing ',' (write ',,' for a comma inside a value)"],
    ['socket,id=s,no wait', 'backend', "invalid parameter name 'no wait'"],
    ['pty,id=a,id=b', 'backend', "parameter 'id' is given more than once"],
    ['pty,i d=a', 'backend', "invalid parameter name 'i d'"],
    ['pty,a..b=1', 'backend', "invalid parameter name 'a..b'"],
    ['hub,id=h,chardevs.0=a,chardevs.2=b', 'backend', "list 'chardevs' has no element 1 ('chardevs.1' is missing)"],
    ['hub,id=h,chardevs.1=a', 'backend', "list 'chardevs' has no element 0 ('chardevs.0' is missing)"],
    [
      'hub,id=h,chardevs.0=a,chardevs.01=b',
      'backend',
      "list index 'chardevs.01' must be written without leading zeros",
    ],
    ['hub,id=h,chardevs=a,chardevs.0=b', 'backend', "'chardevs' is given both as a value and as a list ('chardevs.0')"],
  ];
  it.each(errors)('%j -> %s', (text, implied, message) => {
    expect(() => parseKeyval(text, implied)).toThrow(new KeyvalError(message));
  });
});

describe('booleans', () => {
  it("accepts on/off, yes/no, true/false, y/n (as QEMU's qapi_bool_parse) and nothing else", () => {
    for (const t of ['on', 'yes', 'true']) expect(parseBool(t)).toBe(true);
    for (const f of ['off', 'no', 'false']) expect(parseBool(f)).toBe(false);
    expect(parseBool('y')).toBe(true);
    expect(parseBool('n')).toBe(false);
    for (const x of ['ON', 'Yes', '1', '0', 'Y', '']) expect(parseBool(x)).toBeUndefined();
  });
});

describe('formatting', () => {
  it('escapes commas so that parse(format(x)) is x', () => {
    expect(escapeValue('a,b')).toBe('a,,b');
    const text = formatKeyval('file', [
      ['id', 'f'],
      ['path', '/a,b,'],
    ]);
    expect(text).toBe('file,id=f,path=/a,,b,,');
    expect(parseKeyval(text, 'backend')).toEqual({
      implied: 'file',
      params: new Map([
        ['id', 'f'],
        ['path', '/a,b,'],
      ]),
      flags: [],
    });
  });
});
