// Typed binding of the native addon (native/tsvtep.cc). Keep it thin: the
// addon makes system calls and moves bytes, TypeScript decides.

import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Segmenter } from '../core/offload';

export interface NativePoller {
  /** Watches for events (POLL_READABLE | POLL_WRITABLE); again to change them. */
  start(events: number): void;
  stop(): void;
  close(): void;
}

export interface NativeAddon {
  readonly BATCH_MAX: number;
  readonly POLL_READABLE: number;
  readonly POLL_WRITABLE: number;
  tapOpen(name: string, vnetHdr: boolean): { fd: number; name: string };
  closeFd(fd: number): void;
  readonly TUN_F_CSUM: number;
  readonly TUN_F_TSO4: number;
  readonly TUN_F_TSO6: number;
  readonly TUN_F_TSO_ECN: number;
  tapSetOffload(fd: number, flags: number): void;
  /** The Segmenter's byte work (core/offload.ts), done natively. */
  finishChecksum: Segmenter['finishChecksum'];
  tcpChecksumValid: Segmenter['tcpChecksumValid'];
  segmentTcp: Segmenter['segmentTcp'];
  readFrames(fd: number, slab: Buffer, slotSize: number, headroom: number, max: number, lengths: Uint32Array): number;
  /** vnetHdr: true, an empty virtio_net_hdr in front of every frame; false, none; or per frame (1 = add one). */
  writeFrames(fd: number, slab: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number, results: Int32Array, vnetHdr: boolean | Uint8Array): number;
  udpOpen(record: Buffer, v6only: boolean, rcvbuf: number, sndbuf: number, dontFragment: boolean): number;
  /** Outer IPv4 DF for the datagrams sent from now on (IP_MTU_DISCOVER). */
  udpSetDontFragment(fd: number, on: boolean): void;
  udpLocalRecord(fd: number, record: Buffer): void;
  recvBatch(
    fd: number,
    slab: Buffer,
    slotSize: number,
    headroom: number,
    max: number,
    lengths: Uint32Array,
    records: Buffer,
    segmentSizes: Uint32Array | null,
  ): number;
  udpEnableGro(fd: number): void;
  /**
   * Sends entries first..end-1 (at most BATCH_MAX); results[i] = 0 or errno. A full socket
   * buffer gives EAGAIN to the entry that met it and every later one. Returns how many were sent.
   */
  sendBatch(
    fd: number,
    family: 4 | 6,
    slab: Buffer,
    offsets: Uint32Array,
    lengths: Uint32Array,
    records: Buffer,
    results: Int32Array,
    segmentSizes: Uint32Array | null,
    first: number,
    end: number,
  ): number;
  /** The kernel's path MTU towards the record's address (a connected probe socket's IP_MTU). */
  pathMtu(record: Buffer): number;
  Poller: new (fd: number, onEvent: (errno: number, events: number) => void) => NativePoller;
}

/** An error thrown by the addon: err.code is the errno name, e.g. 'EPERM'. */
export interface ErrnoError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

export function isErrnoError(error: unknown): error is ErrnoError {
  return error instanceof Error && typeof (error as Partial<ErrnoError>).code === 'string';
}

let loaded: NativeAddon | undefined;

export function native(): NativeAddon {
  if (!loaded) {
    // node-gyp-build loads build/Release (built here) or else the prebuilt
    // binary in prebuilds/<platform>-<arch> (what the npm package ships).
    // The package root (with binding.gyp) is three levels up from dist/src/io, two from src/io.
    const load = require('node-gyp-build') as (root: string) => NativeAddon;
    const root = [path.resolve(__dirname, '..', '..', '..'), path.resolve(__dirname, '..', '..')].find((dir) => existsSync(path.join(dir, 'binding.gyp')));
    try {
      loaded = load(root ?? path.resolve(__dirname, '..', '..', '..'));
    } catch (error) {
      throw new Error(`native addon not built (run npm ci): ${(error as Error).message.split('\n')[0]}`);
    }
  }
  return loaded;
}
