// The TAP device: a FramePort over the native addon, woken by the event loop.

import type { FramePort } from '../core/ports';
import { native, type NativePoller } from './native';

export class TapDevice implements FramePort {
  private poller: NativePoller | undefined;
  private closed = false;

  private constructor(
    readonly fd: number,
    readonly name: string,
  ) {}

  /** Opens /dev/net/tun as a TAP without packet info. '' lets the kernel name it. */
  static open(name: string): TapDevice {
    const { fd, name: actual } = native().tapOpen(name, false);
    return new TapDevice(fd, actual);
  }

  readFrames(slab: Buffer, slotSize: number, headroom: number, max: number, lengths: Uint32Array): number {
    return native().readFrames(this.fd, slab, slotSize, headroom, max, lengths);
  }

  writeFrames(slab: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number, results: Int32Array): number {
    return native().writeFrames(this.fd, slab, offsets, lengths, count, results);
  }

  /** Calls onReadable whenever frames wait; errno is non-zero if polling failed. */
  watch(onReadable: (errno: number) => void): void {
    this.poller = new (native().Poller)(this.fd, onReadable);
    this.poller.start();
  }

  /** Stops watching and closes the descriptor; the kernel then deletes the TAP. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller?.close();
    native().closeFd(this.fd);
  }
}
