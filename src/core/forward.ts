// The forwarding decision for a frame from the local bridge, as a learning
// switch makes it: pure, so the engine, tests and benchmarks share it.

import { isGroupMac, macHigh, macLow } from './ethernet';
import { NO_REMOTE, type Fdb } from './fdb';

/**
 * The remote the frame at buf[frame] goes to, or NO_REMOTE to flood it to
 * every peer (broadcast, multicast, or a destination not learned yet).
 */
export function egressRemote(buf: Buffer, frame: number, fdb: Fdb): number {
  if (isGroupMac(buf, frame)) return NO_REMOTE;
  return fdb.lookup(macHigh(buf, frame), macLow(buf, frame));
}
