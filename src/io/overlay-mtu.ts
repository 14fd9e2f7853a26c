// The overlay MTU a network gets when none is configured: the largest inner
// packet that crosses the underlay route to every peer without fragmenting
// (route MTU minus the outer headers). A peer without a route counts as 1500.

import { addressFamily } from '../core/address';
import { VXLAN_OVERHEAD_IPV4, VXLAN_OVERHEAD_IPV6 } from '../core/protocol';
import { routeTo } from './link';

const DEFAULT_ROUTE_MTU = 1500;

/** The smallest route MTU towards peers, less the overhead of each peer's family; 1450 for no peers. */
export async function overlayMtuTowards(peers: string[]): Promise<number> {
  let smallest = Infinity;
  for (const peer of peers) {
    const overhead = addressFamily(peer) === 4 ? VXLAN_OVERHEAD_IPV4 : VXLAN_OVERHEAD_IPV6;
    let routeMtu = DEFAULT_ROUTE_MTU;
    try {
      routeMtu = (await routeTo(peer)).mtu;
    } catch {
      // No route (yet): assume an Ethernet underlay.
    }
    smallest = Math.min(smallest, routeMtu - overhead);
  }
  return Number.isFinite(smallest) ? smallest : DEFAULT_ROUTE_MTU - VXLAN_OVERHEAD_IPV4;
}
