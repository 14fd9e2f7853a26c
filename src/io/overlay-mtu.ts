// The overlay MTU a network gets when none is configured: the largest inner
// packet that crosses the underlay route to every peer without fragmenting
// (route MTU minus the outer headers). A peer without a route counts as 1500.

import { addressFamily, addressRecord } from '../core/address';
import { VXLAN_HEADER_LEN, VXLAN_PORT } from '../core/vxlan';
import { routeTo } from './link';
import { native } from './native';

/** Outer IPv4 + UDP + VXLAN + inner Ethernet headers; IPv6 adds 20. */
const OVERHEAD_IPV4 = 20 + 8 + VXLAN_HEADER_LEN + 14;
const OVERHEAD_IPV6 = 40 + 8 + VXLAN_HEADER_LEN + 14;
const DEFAULT_ROUTE_MTU = 1500;

/** The smallest route MTU towards peers, less the overhead of each peer's family; 1450 for no peers. */
export async function overlayMtuTowards(peers: string[]): Promise<number> {
  let smallest = Infinity;
  for (const peer of peers) {
    const overhead = addressFamily(peer) === 4 ? OVERHEAD_IPV4 : OVERHEAD_IPV6;
    smallest = Math.min(smallest, (await routeMtu(peer)) - overhead);
  }
  return Number.isFinite(smallest) ? smallest : DEFAULT_ROUTE_MTU - OVERHEAD_IPV4;
}

/**
 * The MTU of the route to peer: asked of the kernel with a socket (IP_MTU),
 * which costs a few system calls rather than a process (fleets have
 * thousands of peers); `ip route get` when that cannot tell.
 */
async function routeMtu(peer: string): Promise<number> {
  try {
    const mtu = native().pathMtu(addressRecord(peer, VXLAN_PORT));
    if (mtu > 0) return mtu;
  } catch {
    // Unreachable, or no addon here (unit tests): ask ip.
  }
  try {
    return (await routeTo(peer)).mtu;
  } catch {
    return DEFAULT_ROUTE_MTU; // no route (yet): assume an Ethernet underlay
  }
}
