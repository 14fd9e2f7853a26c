// The TAP device: a FramePort over the native addon, woken by the event loop.

import type { FrameBatch, Slab } from '../core/batches';
import type { FramePort } from '../core/ports';
import { native } from './native';
import { PolledDescriptor } from './polled';

export class TapDevice extends PolledDescriptor implements FramePort {

  /** Why the kernel refused TSO, if it did (the TAP then works without it). */
  offloadError: string | undefined;

  private constructor(
    fd: number,
    readonly name: string,
    /** Frames carry a virtio_net_hdr (see core/offload.ts). */
    readonly vnetHeader: boolean,
  ) {
    super(fd);
  }

  /**
   * Opens /dev/net/tun as a TAP without packet info. '' lets the kernel name
   * it. With offload the kernel may hand over TCP segments of up to 64 KiB
   * (TSO) and partial checksums; if it refuses, offloadError says why.
   */
  static open(name: string, offload: boolean): TapDevice {
    const addon = native();
    const { fd, name: actual } = addon.tapOpen(name, offload);
    const tap = new TapDevice(fd, actual, offload);
    if (offload) {
      try {
        addon.tapSetOffload(fd, addon.TUN_F_CSUM | addon.TUN_F_TSO4 | addon.TUN_F_TSO6 | addon.TUN_F_TSO_ECN);
      } catch (error) {
        tap.offloadError = (error as Error).message;
      }
    }
    return tap;
  }

  readFrames(slab: Slab): number {
    return native().readFrames(this.fd, slab.bytes, slab.slotSize, slab.headroom, slab.slots, slab.lengths);
  }

  writeFrames(batch: FrameBatch): number {
    const vnetHdr = this.vnetHeader ? (batch.ownHeaders ? batch.prependHeader : true) : false;
    return native().writeFrames(this.fd, batch.bytes, batch.offsets, batch.lengths, batch.count, batch.results, vnetHdr);
  }
}
