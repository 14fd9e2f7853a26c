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
  /**
   * Frame larger than the path to its destination that could be neither
   * answered with ICMP "too big" nor fragmented (ARP, other ethertypes, IPv4
   * with DF that must not be answered, ...), or a datagram larger than a slot.
   */
  oversize = 0;
  /** Inner IPv4/IPv6 packet longer than the frame that carried it: cut short on the way. */
  truncated = 0;
  /**
   * Send failed with EMSGSIZE: the kernel knows a smaller path MTU to the
   * remote than we did (outer DF set). The remote's MTU is lowered, so the
   * next frame that large gets an ICMP answer or is fragmented.
   */
  path_mtu = 0;
  /** Flooded frame, but the VNI has no peers. */
  no_peers = 0;
  /** Writing the inner frame to the TAP failed. */
  tap_write = 0;
  /** Sending the datagram failed (see the last errno in the log). */
  socket_send = 0;
  /** Source MAC not learned because the FDB is full. */
  fdb_full = 0;
  /** Broadcast, multicast or unknown-unicast frame not flooded: the VNI's flood rate limit was reached. */
  flood_limited = 0;
  /** Datagram from a new address (--learn-remotes) while the VNI already has --max-remotes learned remotes. */
  remotes_full = 0;
  /**
   * Datagram from a learned remote (not a configured peer) whose inner source
   * MAC lives behind a configured peer or has a static entry: FDB poisoning,
   * or a container that moved to a host that is not a peer. The entry stays.
   */
  move_refused = 0;
}

/**
 * Faults the daemon noticed on a VNI, once per episode (the frames they cost
 * are counted in NetworkDrops).
 */
export class NetworkFaults {
  /** The TAP was found off its bridge (the bridge was deleted, or the TAP taken off it). */
  bridge_lost = 0;
  /** UDP sends started failing (no route, no address, a firewall, ...). */
  send_failing = 0;
  /** Writes to the TAP started failing. */
  tap_write_failing = 0;
}

export type NetworkFault = keyof NetworkFaults;

export type NetworkDropReason = keyof NetworkDrops;

export class NetworkCounters {
  /** Frames received from the overlay and written to the TAP. */
  rxFrames = 0;
  rxBytes = 0;
  /** Datagrams sent to the overlay (a flooded frame counts once per peer). */
  txDatagrams = 0;
  /** Frames read from the TAP and forwarded (a fragmented frame counts once per fragment). */
  txFrames = 0;
  txBytes = 0;
  /** Frames sent to every peer (broadcast, multicast, unknown unicast). */
  floodedFrames = 0;
  /** Frames too big for the path answered with ICMP "fragmentation needed" or ICMPv6 "packet too big". */
  icmpTooBig = 0;
  /** IPv4 packets without DF too big for the path, split into fragments that fit. */
  fragmentedFrames = 0;
  fdbLearned = 0;
  fdbMoved = 0;
  /** Frames whose source MAC has a static entry behind another remote: the entry is kept, not moved. */
  fdbStaticKept = 0;
  fdbAgedOut = 0;
  /** MAC moves not made because the MAC had moved less than a second before (the frame is delivered). */
  fdbMoveLimited = 0;
  /** Learned remotes forgotten: no FDB entry behind them and nothing received for the ageing time. */
  remotesAgedOut = 0;
  readonly drops = new NetworkDrops();
  readonly faults = new NetworkFaults();
}

/** Why a datagram was dropped before it could be tied to a VNI (spelled as the metrics' reason labels). */
export class EngineDrops {
  /** Shorter than the VXLAN header, or the I flag is not set. */
  bad_header = 0;
  /** VNI that no network here serves. */
  unknown_vni = 0;
}

export type EngineDropReason = keyof EngineDrops;

/** The receive path's counters before a datagram is tied to a VNI. */
export class EngineCounters {
  /** Received datagrams in total. */
  rxDatagrams = 0;
  readonly drops = new EngineDrops();
}
