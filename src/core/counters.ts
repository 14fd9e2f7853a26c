// Counters are plain numbers bumped on the hot path; metrics and the control
// interface read them when asked. Nothing here allocates per packet.

/** Why a frame or datagram of a known VNI was dropped. */
export class NetworkDrops {
  /** Inner frame shorter than an Ethernet header. */
  runt = 0;
  /** Inner source MAC is multicast or all zeros. */
  bad_frame = 0;
  /** Datagram from an address that is not a peer of this VNI. */
  unknown_sender = 0;
  /** Frame or datagram larger than we can carry. */
  oversize = 0;
  /** Flooded frame, but the VNI has no peers. */
  no_peers = 0;
  /** Writing the inner frame to the TAP failed. */
  tap_write = 0;
  /** Sending the datagram failed (see the last errno in the log). */
  socket_send = 0;
  /** Source MAC not learned because the FDB is full. */
  fdb_full = 0;
}

export type NetworkDropReason = keyof NetworkDrops;

export class NetworkCounters {
  /** Frames received from the overlay and written to the TAP. */
  rxFrames = 0;
  rxBytes = 0;
  /** Datagrams sent to the overlay (a flooded frame counts once per peer). */
  txDatagrams = 0;
  /** Frames read from the TAP and forwarded. */
  txFrames = 0;
  txBytes = 0;
  /** Frames sent to every peer (broadcast, multicast, unknown unicast). */
  floodedFrames = 0;
  fdbLearned = 0;
  fdbMoved = 0;
  fdbAgedOut = 0;
  readonly drops = new NetworkDrops();
}

/** Drops that happen before a datagram can be tied to a VNI. */
export class EngineCounters {
  /** Shorter than the VXLAN header, or the I flag is not set. */
  badHeader = 0;
  /** VNI that no network here serves. */
  unknownVni = 0;
  /** Received datagrams in total. */
  rxDatagrams = 0;
}
