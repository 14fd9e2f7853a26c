// One VXLAN segment (VNI) on this host: its FDB, its peers, its counters.

import type { TapObserver } from './arp-suppress';
import { Fdb } from './fdb';
import { NetworkCounters } from './counters';
import { LearnedRemotes } from './learned-remotes';
import type { FramePort } from './ports';
import type { TokenBucket } from './rate-limit';
import { VXLAN_HEADER_LEN, writeVxlanHeader } from './vxlan';

export class Network {
  readonly counters = new NetworkCounters();
  /**
   * Largest inner IP packet (L3 MTU) that crosses the underlay to every peer
   * without fragmentation: the underlay MTU minus the VXLAN overhead, or
   * --mtu. Bigger packets get ICMP "too big" or are fragmented (too-big.ts); a
   * remote whose path turned out smaller (Remote.mtu) lowers it for itself.
   */
  overlayMtu = 1450;
  /** Remote ids that get a copy of every broadcast, multicast and unknown-unicast frame. */
  private floodList: number[] = [];
  private readonly peerSet = new Set<number>();
  /** Remotes this VNI accepted with --learn-remotes (not peers): bounded, and they age. */
  readonly learnedRemotes = new LearnedRemotes();
  /** Sees each frame from the TAP first (control plane: local MACs, ARP/ND suppression); undefined: none. */
  tapObserver: TapObserver | undefined = undefined;
  /** Bounds how fast broadcast, multicast and unknown-unicast frames are flooded; undefined: no limit. */
  floodLimiter: TokenBucket | undefined = undefined;

  /** This VNI's VXLAN header, copied in front of segments the engine makes. */
  readonly vxlanHeader = Buffer.alloc(VXLAN_HEADER_LEN);

  constructor(
    readonly vni: number,
    readonly fdb: Fdb,
    /** The TAP (or a fake) that joins this VNI to the local bridge. */
    readonly port: FramePort,
  ) {
    writeVxlanHeader(this.vxlanHeader, 0, vni);
  }

  get peers(): readonly number[] {
    return this.floodList;
  }

  isPeer(remoteId: number): boolean {
    return this.peerSet.has(remoteId);
  }

  addPeer(remoteId: number): void {
    if (this.peerSet.has(remoteId)) return;
    this.peerSet.add(remoteId);
    // A fresh array, so a flood loop in progress keeps the list it started with.
    this.floodList = [...this.floodList, remoteId];
  }

  removePeer(remoteId: number): void {
    if (!this.peerSet.delete(remoteId)) return;
    this.floodList = this.floodList.filter((id) => id !== remoteId);
    this.fdb.forgetRemote(remoteId);
  }
}
