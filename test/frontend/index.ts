// The test front-end: plays QEMU's vhost-user front-end and Linux's virtio_console driver
// against the daemon. Written from the specs, independently of native/ and src/device/.
export { GuestMemory, type GuestMemoryOptions, type MemRegion } from './memory.js';
export {
  SplitQueue,
  type QueueOptions,
  type Segment,
  type IndirectMode,
  DESC_F_NEXT,
  DESC_F_WRITE,
  DESC_F_INDIRECT,
} from './virtqueue.js';
export { VhostUserFrontend, type FrontendOptions, type InitResult, type StartHooks } from './frontend.js';
export { ConsoleDriver, ConsolePort, Ctrl, BAD_ID, type ConsoleDriverOptions, type ControlMessage } from './console.js';
export * from './protocol.js';
