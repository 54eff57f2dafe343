// RotatingFile on real files: the limit is exact, backups=0 starts over in place, a rotation
// that fails keeps every byte in the current file, append counts what is there.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RotatingFile } from '../../src/chardev/rotating.js';
import { tmpDir } from '../helpers/daemon.js';

const dir = tmpDir('vhc-rotating-');
afterAll(() => dir.remove());
let n = 0;
const fresh = () => join(dir.path, `f${n++}.log`);
const bytes = (len: number, seed = 0) => Buffer.from(Array.from({ length: len }, (_, i) => 97 + ((i + seed) % 26)));

describe('RotatingFile', () => {
  it('splits a write at the limit: every rotated file is exactly max-size, the oldest beyond backups go', () => {
    const p = fresh();
    const f = new RotatingFile(p, false, { maxSize: 100, backups: 2 });
    const data = bytes(450);
    f.write(data.subarray(0, 250)); // one write across two limits
    f.write(data.subarray(250));
    f.close();
    // Rotations at 100, 200, 300 and 400; kept: .2 = [200,300), .1 = [300,400), PATH = [400,450).
    expect(readFileSync(`${p}.2`)).toEqual(data.subarray(200, 300));
    expect(readFileSync(`${p}.1`)).toEqual(data.subarray(300, 400));
    expect(readFileSync(p)).toEqual(data.subarray(400));
    expect(existsSync(`${p}.3`)).toBe(false);
  });

  it('backups=0: the file starts over in place at the limit', () => {
    const p = fresh();
    const f = new RotatingFile(p, false, { maxSize: 64, backups: 0 });
    const data = bytes(150);
    f.write(data);
    f.close();
    expect(readFileSync(p)).toEqual(data.subarray(128));
    expect(existsSync(`${p}.1`)).toBe(false);
  });

  it('append counts what the file holds: rotation happens where a running writer would have rotated', () => {
    const p = fresh();
    writeFileSync(p, bytes(90));
    const f = new RotatingFile(p, true, { maxSize: 100, backups: 3 });
    expect(f.size).toBe(90);
    f.write(bytes(30, 5));
    f.close();
    expect(readFileSync(`${p}.1`)).toEqual(Buffer.concat([bytes(90), bytes(10, 5)]));
    expect(readFileSync(p)).toEqual(bytes(30, 5).subarray(10));
  });

  it('a rotation that fails reports it and writes on in the current file: no byte lost', () => {
    const p = fresh();
    mkdirSync(`${p}.1`); // PATH cannot be renamed over a directory
    writeFileSync(join(`${p}.1`, 'x'), 'x');
    const errors: string[] = [];
    const f = new RotatingFile(p, false, { maxSize: 50, backups: 1 }, (e) => errors.push(e.message));
    const data = bytes(180);
    for (let at = 0; at < data.length; at += 60) f.write(data.subarray(at, at + 60));
    f.close();
    expect(readFileSync(p)).toEqual(data);
    // Tried at 50 (first write), not again until another max-size has gone by (third write, at
    // 120): a failing rotation is not retried on every write.
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(/EISDIR|ENOTEMPTY|directory/i);
  });
});
