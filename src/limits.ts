// The configuration's numeric limits and its boolean spellings, in one place: the config
// layer (argv, file), the control API (QMP) and the layers below (hub, device) all check
// against these, so a bound cannot drift between them.

/** vhost-user carries a queue's index in 8 bits (SET_VRING_KICK/CALL), so 2 * (max_ports + 1)
 *  queues must fit 256: at most 127 ports. */
export const MAX_PORTS = 127;

/** QEMU's default max_ports: 31 ports = 64 queues. Linux allocates rx buffers only for ports
 *  that exist, so unused slots cost the guest nothing but their (small) vrings, and leave
 *  room for hot-plug. */
export const DEFAULT_MAX_PORTS = 31;

/** A hub's members when its max-members= is not given (QEMU's hub takes 4; viewers attached
 *  at run time need more). */
export const DEFAULT_HUB_MAX_MEMBERS = 64;

/** Console size bounds, for the configuration, console-resize and the device alike: the
 *  virtio config and RESIZE message carry u16 fields, and a terminal of 0 columns or rows is
 *  no size at all (the port ignores a pty reporting one). */
export const CONSOLE_SIZE_MIN = 1;
export const CONSOLE_SIZE_MAX = 65535;

// QEMU's qapi_bool_parse (qapi/qapi-util.c): exactly these, case-sensitive.
const TRUE = new Set(['on', 'yes', 'true', 'y']);
const FALSE = new Set(['off', 'no', 'false', 'n']);

/** on/yes/true/y -> true, off/no/false/n -> false, anything else -> undefined (the caller names the key). */
export function parseBool(value: string): boolean | undefined {
  if (TRUE.has(value)) return true;
  if (FALSE.has(value)) return false;
  return undefined;
}
