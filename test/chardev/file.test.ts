import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { collectInput, start, tmpdir, until } from './helpers.js';

describe('file chardev', () => {
  it('writes guest output; append=off truncates, append=on keeps', async () => {
    const dir = tmpdir();
    const out = path.join(dir, 'out.txt');
    fs.writeFileSync(out, 'old\n');
    const f = await start('file', 'f0', { path: out });
    expect(f.connected).toBe(true);
    expect(f.write(Buffer.from('one\n'))).toBe(4);
    await f.close();
    expect(fs.readFileSync(out, 'utf8')).toBe('one\n');

    const g = await start('file', 'f1', { path: out, append: 'on' });
    g.write(Buffer.from('two\n'));
    await g.close();
    expect(fs.readFileSync(out, 'utf8')).toBe('one\ntwo\n');
  });

  it('feeds input-path to the guest, and only while input is resumed', async () => {
    const dir = tmpdir();
    const inp = path.join(dir, 'in.txt');
    fs.writeFileSync(inp, 'boot script\n');
    const f = await start('file', 'f2', { path: path.join(dir, 'out'), 'input-path': inp });
    let early = 0;
    f.on('data', () => early++);
    await new Promise((r) => setTimeout(r, 20)); // time for a read that must not happen
    expect(early).toBe(0); // paused until a consumer resumes it
    const input = collectInput(f);
    await until(() => input.text() === 'boot script\n', 'input file content');
    expect(f.connected).toBe(true); // the input's end is not the chardev's end
  });

  it('reports a path that cannot be opened, naming the chardev', async () => {
    const missing = path.join(tmpdir(), 'no', 'such', 'dir', 'log');
    await expect(start('file', 'f3', { path: missing })).rejects.toThrow(`chardev 'f3': cannot open '${missing}'`);
  });
});

describe('logfile option', () => {
  it('records guest output, with timestamps at line starts, even with no peer', async () => {
    const dir = tmpdir();
    const log = path.join(dir, 'pty.log');
    fs.writeFileSync(log, 'before\n');
    // A pty nobody opened: output goes nowhere but the log.
    const p = await start('pty', 'p0', { logfile: log, logappend: 'on', timestamp: 'on' });
    expect(p.connected).toBe(false);
    p.write(Buffer.from('line one\nline '));
    p.write(Buffer.from('two\n'));
    await p.close();
    const lines = fs.readFileSync(log, 'utf8').split('\n');
    expect(lines[0]).toBe('before');
    expect(lines[1]).toMatch(/^\[\d{4}-\d\d-\d\dT[\d:.]+Z\] line one$/);
    expect(lines[2]).toMatch(/^\[\d{4}-\d\d-\d\dT[\d:.]+Z\] line two$/); // one stamp for a line split over writes
    expect(lines[3]).toBe('');
  });

  it('logappend=off starts the log afresh', async () => {
    const log = path.join(tmpdir(), 'r.log');
    fs.writeFileSync(log, 'stale');
    const r = await start('ringbuf', 'r0', { logfile: log });
    r.write(Buffer.from('fresh'));
    await r.close();
    expect(fs.readFileSync(log, 'utf8')).toBe('fresh');
  });
});

describe('logfile reopen', () => {
  it('continues in a new file after the old one was moved away (logrotate)', async () => {
    const dir = tmpdir();
    const log = path.join(dir, 'c.log');
    const r = await start('ringbuf', 'rot', { logfile: log });
    r.write(Buffer.from('old '));
    fs.renameSync(log, `${log}.1`);
    r.reopenLogs();
    r.write(Buffer.from('new'));
    expect(fs.readFileSync(`${log}.1`, 'utf8')).toBe('old ');
    expect(fs.readFileSync(log, 'utf8')).toBe('new');
  });

  it('a file backend also goes on in a new file, losing nothing queued for the old one', async () => {
    const dir = tmpdir();
    const out = path.join(dir, 'console.out');
    const f = await start('file', 'frot', { path: out });
    f.write(Buffer.from('before rotation\n'));
    fs.renameSync(out, `${out}.1`);
    f.reopenLogs();
    f.write(Buffer.from('after\n'));
    await f.close();
    expect(fs.readFileSync(`${out}.1`, 'utf8')).toBe('before rotation\n');
    expect(fs.readFileSync(out, 'utf8')).toBe('after\n');
  });
});
