// A chardev from QEMU-style options (`createChardev('socket', 's0', { path, server: 'on' })`),
// not started: the tests' shortcut through the same parser and factory the VM uses. Kept
// apart from helpers.ts so that child processes (fixtures/stdio-child.ts) can use it without
// vitest.
import type { Chardev } from '../../src/chardev/chardev.js';
import { chardevFromConfig, parseChardevOptions } from '../../src/chardev/registry.js';

export function createChardev(backend: string, id: string, opts: Record<string, string>): Chardev {
  return chardevFromConfig(parseChardevOptions(backend, id, opts));
}
