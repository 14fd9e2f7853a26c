// The overlay MTU a network gets when none is configured: the largest inner
// packet that crosses the underlay route to every peer without fragmenting
// (route MTU minus the outer headers). A peer without a route counts as 1500.

import { addressFamily, addressRecord } from '../core/address';
import { VXLAN_OVERHEAD_IPV4, VXLAN_OVERHEAD_IPV6 } from '../core/protocol';
import { VXLAN_PORT } from '../core/vxlan';
import { routeTo } from './link';
import { native } from './native';

const DEFAULT_ROUTE_MTU = 1500;

/** The smallest route MTU towards peers, less the overhead of each peer's family; 1450 for no peers. */
export async function overlayMtuTowards(peers: string[]): Promise<number> {
  let smallest = Infinity;
  for (const peer of peers) {
    const overhead = addressFamily(peer) === 4 ? VXLAN_OVERHEAD_IPV4 : VXLAN_OVERHEAD_IPV6;
    smallest = Math.min(smallest, (await routeMtu(peer)) - overhead);
  }
  return Number.isFinite(smallest) ? smallest : DEFAULT_ROUTE_MTU - VXLAN_OVERHEAD_IPV4;
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
