// QMP's ChardevBackend ({type, data}, qapi/char.json) -> our ChardevSpec.
//
// QEMU's QMP names some things differently from its own -chardev options (file `out` is
// `path`, pipe `device` is `path`, a socket's address is a nested SocketAddressLegacy). We
// translate to the -chardev spelling and then go through chardevFromParams, so a chardev made
// at run time is checked by the same code as one on the command line.

import { ConfigError } from '../errors.js';
import { parseBool } from '../config/keyval.js';
import { chardevFromParams, flattenParams, type ChardevSpec } from '../config/schema.js';

/** QMP data keys whose -chardev option has another name. */
const RENAMED: Record<string, Record<string, string>> = {
  file: { out: 'path', in: 'input-path' },
  pipe: { device: 'path' },
  serial: { device: 'path' },
  parallel: { device: 'path' },
};

/** QEMU's QMP type aliases. */
const ALIAS: Record<string, string> = { memory: 'ringbuf' };

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function chardevFromQmp(id: string, backend: unknown): ChardevSpec {
  if (!isObject(backend))
    throw new ConfigError("Invalid parameter type for 'backend', expected: object {type, data}", 'backend');
  const { type, data = {}, ...rest } = backend;
  const extra = Object.keys(rest)[0];
  if (extra !== undefined) throw new ConfigError(`Parameter 'backend.${extra}' is unexpected`, `backend.${extra}`);
  if (typeof type !== 'string')
    throw new ConfigError("Parameter 'backend.type' is missing or not a string", 'backend.type');
  if (!isObject(data))
    throw new ConfigError("Invalid parameter type for 'backend.data', expected: object", 'backend.data');
  const params = new Map<string, string>([['id', id]]);
  for (const [key, value] of Object.entries(data)) {
    if (type === 'socket' && key === 'addr') for (const [k, v] of socketAddress(value)) params.set(k, v);
    else for (const [k, v] of flattenParams({ [RENAMED[type]?.[key] ?? key]: value }, 'backend.data')) params.set(k, v);
  }
  if (type === 'socket') {
    // QMP's ChardevSocket defaults are not -chardev's: `server` defaults to true and `wait` to
    // false (a chardev-add must not hang the monitor until a client comes).
    if (!params.has('server')) params.set('server', 'on');
    if (!params.has('wait') && parseBool(params.get('server')!) === true) params.set('wait', 'off');
  }
  return chardevFromParams(ALIAS[type] ?? type, params, 'chardev-add');
}

/** SocketAddressLegacy {type, data: {...}} (or the flat SocketAddress {type, ...}) -> path= / host=,port=. */
function socketAddress(addr: unknown): Map<string, string> {
  if (!isObject(addr))
    throw new ConfigError(
      "Invalid parameter type for 'backend.data.addr', expected: object {type, data}",
      'backend.data.addr',
    );
  const { type, data, ...flat } = addr;
  const fields = isObject(data) ? data : flat;
  switch (type) {
    case 'unix':
      if (typeof fields.path !== 'string')
        throw new ConfigError("Parameter 'backend.data.addr.data.path' is missing", 'backend.data.addr.data.path');
      return flattenParams(fields, 'backend.data.addr.data');
    case 'inet':
      return flattenParams(fields, 'backend.data.addr.data');
    default:
      throw new ConfigError(
        `backend.data.addr: address type '${String(type)}' is not supported (unix or inet)`,
        'backend.data.addr.type',
        String(type),
      );
  }
}
