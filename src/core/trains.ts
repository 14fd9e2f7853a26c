// GSO train building: a TSO frame from the TAP (up to 64 KiB of one TCP
// flow) is cut into frames that fit the overlay, each behind the VNI's VXLAN
// header, back to back in one buffer (the Segmenter does the byte work).
// Equal segments in a row form a train: one UDP datagram to the kernel with
// UDP_SEGMENT set, which it splits on the wire (UDP GSO).

import type { TrainQueue } from './batches';
import type { Network } from './network';
import { MAX_GSO_BYTES, MAX_GSO_SEGMENTS, vnetGsoSize, type Segmenter } from './offload';
import type { Remote } from './remotes';

/** segmentTcp's failures. */
export const SEGMENT_NOT_TCP = -1;
export const SEGMENT_NO_ROOM = -2;

/**
 * Cuts the TSO frame at bytes[frame..+length] (its virtio_net_hdr at header) into segments
 * whose IP packets fit mtu, into trains.bytes; trains.shape says how ([count, stride, last]).
 * Returns 0, SEGMENT_NOT_TCP or SEGMENT_NO_ROOM.
 */
export function segmentFrame(
  segmenter: Segmenter,
  bytes: Buffer,
  header: number,
  frame: number,
  length: number,
  mtu: number,
  network: Network,
  trains: TrainQueue,
): number {
  return segmenter.segmentTcp(bytes, frame, length, vnetGsoSize(bytes, header), mtu, network.vxlanHeader, trains.bytes, 0, trains.bytes.length, trains.shape);
}

/** Trains that fit one send of segments of stride bytes: within 64 KiB and the kernel's count. */
export function segmentsPerTrain(stride: number): number {
  return Math.min(MAX_GSO_SEGMENTS, Math.floor(MAX_GSO_BYTES / stride));
}

/**
 * Queues the segments in trains.bytes (trains.shape) to one remote, as trains of up to
 * segmentsPerTrain. Stops early (returns the first segment not queued) when the queue is full.
 */
export function queueTrains(trains: TrainQueue, network: Network, remoteId: number, remote: Remote, firstSegment: number, dontFragment: number): number {
  const segments = trains.shape[0];
  const stride = trains.shape[1];
  const lastLength = trains.shape[2];
  const perTrain = segmentsPerTrain(stride);
  for (let first = firstSegment; first < segments; first += perTrain) {
    if (trains.count === trains.capacity) return first;
    const n = Math.min(perTrain, segments - first);
    const length = (n - 1) * stride + (first + n === segments ? lastLength : stride);
    trains.add(network, remoteId, remote.record, first * stride, length, n > 1 ? stride : 0, n, dontFragment);
  }
  return segments;
}
