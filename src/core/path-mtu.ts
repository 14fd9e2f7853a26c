// Path MTU per remote: the overlay MTU of a network holds until a send says
// otherwise (EMSGSIZE with outer DF set: the kernel learned a smaller path
// MTU from the underlay). Then the remote's MTU is lowered to what the kernel
// knows, so frames that large get an ICMP answer or are fragmented; it is
// raised again when the kernel's value expires.

import { isMappedIpv4 } from './address';
import { NO_REMOTE } from './fdb';
import type { Network } from './network';
import { VXLAN_OVERHEAD_IPV4, VXLAN_OVERHEAD_IPV6 } from './protocol';
import { IPV4_MIN_MTU } from './too-big';
import type { DatagramPort } from './ports';
import { NO_PATH_LIMIT, type Remote, type RemoteTable } from './remotes';

export class PathMtus {
  /** Remotes whose Remote.mtu is set; while 0 the path check is one comparison. */
  private limitedRemotes = 0;

  constructor(
    private readonly remotes: RemoteTable,
    private readonly socket: DatagramPort,
    private readonly onChange?: (remote: string, mtu: number) => void,
  ) {}

  /** True once some remote's path is known to be smaller than its network's overlay MTU. */
  get anyLimited(): boolean {
    return this.limitedRemotes !== 0;
  }

  /** Largest inner packet that fits the path to remoteId, or to every peer if NO_REMOTE. */
  of(network: Network, remoteId: number): number {
    let mtu = network.overlayMtu;
    if (this.limitedRemotes === 0) return mtu;
    const remotes = this.remotes;
    if (remoteId !== NO_REMOTE) {
      const remote = remotes.get(remoteId);
      return remote !== undefined && remote.mtu < mtu ? remote.mtu : mtu;
    }
    const peers = network.peers;
    for (let p = 0; p < peers.length; p++) {
      const remote = remotes.get(peers[p]);
      if (remote !== undefined && remote.mtu < mtu) mtu = remote.mtu;
    }
    return mtu;
  }

  /**
   * A send to remoteId failed with EMSGSIZE: the kernel knows a smaller path
   * MTU (outer DF set, and an ICMP "too big" came back from the underlay, or
   * the route's MTU is smaller). Ask it, and lower the remote's MTU so that
   * frames that large get an answer or are fragmented from now on.
   */
  lower(remoteId: number, packet: number): void {
    const remote = this.remotes.get(remoteId);
    if (remote === undefined || packet > remote.mtu) return; // already known
    let mtu = this.kernelPathMtu(remote);
    // The kernel's answer should explain the failure; if it cannot, go below what failed.
    if (mtu <= 0 || mtu >= packet) mtu = packet - 8;
    mtu = Math.max(mtu, IPV4_MIN_MTU);
    if (remote.mtu === NO_PATH_LIMIT) this.limitedRemotes++;
    remote.mtu = mtu;
    this.onChange?.(remote.address, mtu);
  }

  /** Path MTUs come back up when the kernel's do (its learned values expire after 10 minutes). */
  recheck(): void {
    let limited = 0;
    for (const remote of this.remotes.all()) {
      if (remote.mtu === NO_PATH_LIMIT) continue;
      const mtu = this.kernelPathMtu(remote);
      if (mtu > remote.mtu) {
        remote.mtu = mtu;
        this.onChange?.(remote.address, mtu);
      }
      limited++;
    }
    this.limitedRemotes = limited;
  }

  /** The kernel's path MTU to the remote as an inner packet size; 0 if unknown. */
  private kernelPathMtu(remote: Remote): number {
    const socket = this.socket;
    const outer = socket.pathMtu === undefined ? 0 : socket.pathMtu(remote.record, 0);
    if (outer <= 0) return 0;
    return outer - (isMappedIpv4(remote.record, 0) ? VXLAN_OVERHEAD_IPV4 : VXLAN_OVERHEAD_IPV6);
  }
}
