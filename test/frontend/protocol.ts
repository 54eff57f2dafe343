// vhost-user wire format, front-end side, written from QEMU's docs/interop/vhost-user.rst:
// a 12-byte header (request, flags, size; native = little endian here) and a payload whose
// shape depends on the request. Pure encode/decode, no I/O.
import type { MemRegion } from './memory.js';

export const Req = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
  SET_MEM_TABLE: 5,
  SET_LOG_BASE: 6,
  SET_LOG_FD: 7,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  SEND_RARP: 19,
  NET_SET_MTU: 20,
  SET_BACKEND_REQ_FD: 21,
  IOTLB_MSG: 22,
  SET_VRING_ENDIAN: 23,
  GET_CONFIG: 24,
  SET_CONFIG: 25,
  RESET_DEVICE: 34,
  GET_MAX_MEM_SLOTS: 36,
  ADD_MEM_REG: 37,
  REM_MEM_REG: 38,
  SET_STATUS: 39,
  GET_STATUS: 40,
} as const;

/** Backend -> front-end requests on the backend channel. */
export const BackendReq = { IOTLB_MSG: 1, CONFIG_CHANGE_MSG: 2 } as const;

export const ProtoF = {
  MQ: 0,
  LOG_SHMFD: 1,
  RARP: 2,
  REPLY_ACK: 3,
  MTU: 4,
  BACKEND_REQ: 5,
  CROSS_ENDIAN: 6,
  CRYPTO_SESSION: 7,
  PAGEFAULT: 8,
  CONFIG: 9,
  BACKEND_SEND_FD: 10,
  HOST_NOTIFIER: 11,
  INFLIGHT_SHMFD: 12,
  RESET_DEVICE: 13,
  INBAND_NOTIFICATIONS: 14,
  CONFIGURE_MEM_SLOTS: 15,
  STATUS: 16,
} as const;

/** Virtio feature bits that matter to a console front-end. */
export const F = {
  CONSOLE_SIZE: 0,
  CONSOLE_MULTIPORT: 1,
  CONSOLE_EMERG_WRITE: 2,
  RING_INDIRECT_DESC: 28,
  RING_EVENT_IDX: 29,
  PROTOCOL_FEATURES: 30,
  VERSION_1: 32,
  ACCESS_PLATFORM: 33,
  RING_PACKED: 34,
} as const;

export const bit = (n: number): bigint => 1n << BigInt(n);
export const has = (features: bigint, n: number): boolean => (features & bit(n)) !== 0n;

export const FLAG_VERSION = 0x1;
export const FLAG_REPLY = 0x4;
export const FLAG_NEED_REPLY = 0x8;
export const VRING_NOFD = 0x100;
export const HEADER_SIZE = 12;
/** Virtio device status bits (SET_STATUS). */
export const Status = { ACKNOWLEDGE: 1, DRIVER: 2, DRIVER_OK: 4, FEATURES_OK: 8 } as const;

export interface Header {
  request: number;
  flags: number;
  size: number;
}

export function encodeMessage(request: number, payload: Uint8Array = new Uint8Array(0), flags = FLAG_VERSION): Buffer {
  const b = Buffer.alloc(HEADER_SIZE + payload.length);
  b.writeUInt32LE(request, 0);
  b.writeUInt32LE(flags, 4);
  b.writeUInt32LE(payload.length, 8);
  b.set(payload, HEADER_SIZE);
  return b;
}

export function decodeHeader(b: Uint8Array): Header {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { request: dv.getUint32(0, true), flags: dv.getUint32(4, true), size: dv.getUint32(8, true) };
}

export function u64(v: bigint | number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
}

export function readU64(b: Uint8Array): bigint {
  if (b.length !== 8) throw new Error(`expected an 8-byte u64 payload, got ${b.length} bytes`);
  return Buffer.from(b.buffer, b.byteOffset, 8).readBigUInt64LE(0);
}

/** struct vhost_vring_state { u32 index; u32 num; } */
export function vringState(index: number, num: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(index, 0);
  b.writeUInt32LE(num, 4);
  return b;
}

export function readVringState(b: Uint8Array): { index: number; num: number } {
  if (b.length !== 8) throw new Error(`expected an 8-byte vring state, got ${b.length} bytes`);
  const buf = Buffer.from(b.buffer, b.byteOffset, 8);
  return { index: buf.readUInt32LE(0), num: buf.readUInt32LE(4) };
}

export interface VringAddr {
  index: number;
  flags?: number;
  desc: bigint;
  used: bigint;
  avail: bigint;
  log?: bigint;
}

/** struct vhost_vring_addr: index, flags, then desc, used, avail, log user addresses (u64). */
export function vringAddr(a: VringAddr): Buffer {
  const b = Buffer.alloc(40);
  b.writeUInt32LE(a.index, 0);
  b.writeUInt32LE(a.flags ?? 0, 4);
  b.writeBigUInt64LE(a.desc, 8);
  b.writeBigUInt64LE(a.used, 16);
  b.writeBigUInt64LE(a.avail, 24);
  b.writeBigUInt64LE(a.log ?? 0n, 32);
  return b;
}

function writeRegion(b: Buffer, at: number, r: MemRegion): void {
  b.writeBigUInt64LE(r.guestPhysAddr, at);
  b.writeBigUInt64LE(r.memorySize, at + 8);
  b.writeBigUInt64LE(r.userspaceAddr, at + 16);
  b.writeBigUInt64LE(r.mmapOffset, at + 24);
}

/** SET_MEM_TABLE: u32 nregions, u32 padding, then nregions x 32-byte regions (one fd each). */
export function memTable(regions: readonly MemRegion[]): Buffer {
  const b = Buffer.alloc(8 + 32 * regions.length);
  b.writeUInt32LE(regions.length, 0);
  regions.forEach((r, i) => writeRegion(b, 8 + 32 * i, r));
  return b;
}

/** ADD_MEM_REG / REM_MEM_REG: u64 padding, then one region. */
export function memRegionMsg(r: MemRegion): Buffer {
  const b = Buffer.alloc(40);
  writeRegion(b, 8, r);
  return b;
}

/** GET_CONFIG / SET_CONFIG: u32 offset, u32 size, u32 flags, then `size` bytes. */
export function configMsg(offset: number, size: number, data?: Uint8Array, flags = 0): Buffer {
  const b = Buffer.alloc(12 + size);
  b.writeUInt32LE(offset, 0);
  b.writeUInt32LE(size, 4);
  b.writeUInt32LE(flags, 8);
  if (data) b.set(data.subarray(0, size), 12);
  return b;
}

export function readConfigMsg(b: Uint8Array): { offset: number; size: number; flags: number; data: Buffer } {
  if (b.length < 12) throw new Error(`config payload too short: ${b.length} bytes`);
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  const size = buf.readUInt32LE(4);
  if (b.length !== 12 + size) throw new Error(`config payload is ${b.length} bytes, header says 12 + ${size}`);
  return { offset: buf.readUInt32LE(0), size, flags: buf.readUInt32LE(8), data: Buffer.from(buf.subarray(12)) };
}

/** Virtio console config space: le16 cols, le16 rows, le32 max_nr_ports, le32 emerg_wr. */
export interface ConsoleConfig {
  cols: number;
  rows: number;
  maxNrPorts: number;
  emergWr: number;
}

export function parseConsoleConfig(b: Uint8Array): ConsoleConfig {
  if (b.length < 8) throw new Error(`console config needs at least 8 bytes, got ${b.length}`);
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  return {
    cols: buf.readUInt16LE(0),
    rows: buf.readUInt16LE(2),
    maxNrPorts: buf.readUInt32LE(4),
    emergWr: b.length >= 12 ? buf.readUInt32LE(8) : 0,
  };
}

/** Which requests are answered with a payload even without NEED_REPLY. */
export const REPLYING: ReadonlySet<number> = new Set([
  Req.GET_FEATURES,
  Req.GET_PROTOCOL_FEATURES,
  Req.GET_VRING_BASE,
  Req.GET_QUEUE_NUM,
  Req.GET_CONFIG,
  Req.GET_MAX_MEM_SLOTS,
  Req.GET_STATUS,
]);

export function reqName(r: number): string {
  for (const [k, v] of Object.entries(Req)) if (v === r) return k;
  return `request ${r}`;
}
