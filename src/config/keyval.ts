// QEMU's keyval syntax, as `-chardev` and `-device` take it:
//
//   backend,key=value,key=value
//
// - The first element may omit `key=`: it is the value of the implied key (the chardev
//   backend, the device driver). Only the first element may do so.
// - `,,` inside a value stands for one literal comma (QEMU's escape; there is no other).
// - Keys are dotted paths of [A-Za-z0-9_-] fragments; a numeric last fragment makes a list
//   (`chardevs.0=a,chardevs.1=b`), which `takeList` turns into an array.
// - Booleans are on/off; yes/no, true/false and y/n are accepted too, as QEMU's own boolean
//   parser (qapi_bool_parse) accepts them. `parseBool` (src/limits.ts) is the single place that decides.
//
// - An element without '=' after the first (`server`, `nowait`) is a *flag*: QEMU's QemuOpts
//   reads it as a short-form boolean (`server` = server=on, `nowait` = wait=off; deprecated
//   since QEMU 6.0, still accepted with a warning by QEMU 10.x, util/qemu-option.c). It is
//   returned in `flags` as written; the layer that knows which options are booleans
//   (schema.ts) resolves it or refuses it with advice that works.
//
// Where QemuOpts is lax in other ways (a repeated key silently overriding the first), we
// refuse with an error that says what to write, because a silently ignored typo in a
// console configuration costs an evening.

/** A syntax error; the caller prefixes it with the option and the whole text. */
export class KeyvalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyvalError';
  }
}

export interface Keyval {
  /** Value of the implied first key (backend or driver), if the text starts with one. */
  implied?: string;
  /** key -> value, in the order written. */
  params: Map<string, string>;
  /** Elements written without '=' (QEMU's short-form booleans: `server`, `nowait`), in order. */
  flags: string[];
}

const KEY = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/** Parse `text`. `impliedKey` names the implied key in error messages ('backend', 'driver'). */
export function parseKeyval(text: string, impliedKey?: string): Keyval {
  const params = new Map<string, string>();
  const flags: string[] = [];
  let implied: string | undefined;
  let pos = 0;
  let first = true;
  if (text === '') throw new KeyvalError('empty');
  while (pos <= text.length) {
    // A key runs up to '=' or ','; keys cannot contain commas, so no escape is needed there.
    let end = pos;
    while (end < text.length && text[end] !== '=' && text[end] !== ',') end++;
    const key = text.slice(pos, end);
    if (end >= text.length || text[end] === ',') {
      // An element without '=': the implied key's value, or a flag (a short-form boolean).
      if (first && impliedKey !== undefined && key !== '') {
        const [value, next] = readValue(text, pos);
        implied = value;
        pos = next;
        first = false;
        if (pos > text.length) break;
        continue;
      }
      if (key === '')
        throw new KeyvalError(
          pos === 0
            ? `missing ${impliedKey ?? 'parameter'}`
            : `empty parameter at position ${pos + 1} (a trailing or doubled ','?)`,
        );
      if (!KEY.test(key)) throw new KeyvalError(`invalid parameter name '${key}'`);
      if (flags.includes(key)) throw new KeyvalError(`parameter '${key}' is given more than once`);
      flags.push(key);
      first = false;
      pos = end + 1;
      if (end < text.length && end + 1 >= text.length)
        throw new KeyvalError(`trailing ',' (write ',,' for a comma inside a value)`);
      continue;
    }
    if (key === '') throw new KeyvalError(`empty parameter name at position ${pos + 1}`);
    if (!KEY.test(key)) throw new KeyvalError(`invalid parameter name '${key}'`);
    first = false;
    const [value, next] = readValue(text, end + 1);
    if (params.has(key)) throw new KeyvalError(`parameter '${key}' is given more than once`);
    params.set(key, value);
    pos = next;
  }
  if (impliedKey !== undefined) {
    // `backend=pty,...` is the explicit spelling of the implied key; QEMU accepts it too.
    const explicit = params.get(impliedKey);
    if (explicit !== undefined) {
      if (implied !== undefined) throw new KeyvalError(`${impliedKey} is given twice ('${implied}' and '${explicit}')`);
      implied = explicit;
      params.delete(impliedKey);
    }
    if (implied === undefined) throw new KeyvalError(`missing ${impliedKey}: the text must start with it`);
    if (implied === '') throw new KeyvalError(`empty ${impliedKey}`);
  }
  checkLists(params);
  return implied === undefined ? { params, flags } : { implied, params, flags };
}

/** Read a value starting at `pos` up to an unescaped ',' (or the end). Returns [value, position after the separator]. */
function readValue(text: string, pos: number): [string, number] {
  let value = '';
  while (pos < text.length) {
    const c = text[pos]!;
    if (c === ',') {
      if (text[pos + 1] === ',') {
        value += ',';
        pos += 2;
        continue;
      }
      // A separator must be followed by another element; `a=1,` is a stray comma.
      if (pos + 1 >= text.length) throw new KeyvalError(`trailing ',' (write ',,' for a comma inside a value)`);
      return [value, pos + 1];
    }
    value += c;
    pos++;
  }
  return [value, text.length + 1];
}

/** Lists must be indexed 0..n-1, each index written once in canonical form, and a name cannot be both a list and a scalar. */
function checkLists(params: Map<string, string>): void {
  const lists = new Map<string, number[]>();
  for (const key of params.keys()) {
    const dot = key.lastIndexOf('.');
    if (dot < 0) continue;
    const base = key.slice(0, dot);
    const index = key.slice(dot + 1);
    if (!/^\d+$/.test(index)) continue;
    if (index !== String(Number(index)))
      throw new KeyvalError(`list index '${key}' must be written without leading zeros`);
    if (params.has(base)) throw new KeyvalError(`'${base}' is given both as a value and as a list ('${key}')`);
    const seen = lists.get(base) ?? [];
    seen.push(Number(index));
    lists.set(base, seen);
  }
  for (const [base, indexes] of lists) {
    indexes.sort((a, b) => a - b);
    indexes.forEach((index, i) => {
      if (index !== i) throw new KeyvalError(`list '${base}' has no element ${i} ('${base}.${i}' is missing)`);
    });
  }
}

/** Remove `base.0`, `base.1`, ... from `params` and return them in order ([] if absent). */
export function takeList(params: Map<string, string>, base: string): string[] {
  const out: string[] = [];
  for (let i = 0; params.has(`${base}.${i}`); i++) {
    out.push(params.get(`${base}.${i}`)!);
    params.delete(`${base}.${i}`);
  }
  return out;
}

/** The boolean spellings live with the other rules of the configuration (src/limits.ts). */
export { parseBool } from '../limits.js';

/** The inverse of parseKeyval for one value: escape commas. */
export function escapeValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/** Format params back to keyval text (implied value first). */
export function formatKeyval(implied: string | undefined, params: Iterable<[string, string]>): string {
  const parts = implied === undefined ? [] : [escapeValue(implied)];
  for (const [k, v] of params) parts.push(`${k}=${escapeValue(v)}`);
  return parts.join(',');
}
