// The overlay MTU a network gets when none is configured: the largest inner
// packet that crosses the underlay route to every peer without fragmenting
// (route MTU minus the outer headers). A peer without a route counts as 1500.

import { addressFamily } from '../core/address';
import { VXLAN_HEADER_LEN } from '../core/vxlan';
import { routeTo } from './link';

/** Outer IPv4 + UDP + VXLAN + inner Ethernet headers; IPv6 adds 20. */
const OVERHEAD_IPV4 = 20 + 8 + VXLAN_HEADER_LEN + 14;
const OVERHEAD_IPV6 = 40 + 8 + VXLAN_HEADER_LEN + 14;
const DEFAULT_ROUTE_MTU = 1500;

/** The smallest route MTU towards peers, less the overhead of each peer's family; 1450 for no peers. */
export async function overlayMtuTowards(peers: string[]): Promise<number> {
  let smallest = Infinity;
  for (const peer of peers) {
    const overhead = addressFamily(peer) === 4 ? OVERHEAD_IPV4 : OVERHEAD_IPV6;
    let routeMtu = DEFAULT_ROUTE_MTU;
    try {
      routeMtu = (await routeTo(peer)).mtu;
    } catch {
      // No route (yet): assume an Ethernet underlay.
    }
    smallest = Math.min(smallest, routeMtu - overhead);
  }
  return Number.isFinite(smallest) ? smallest : DEFAULT_ROUTE_MTU - OVERHEAD_IPV4;
}
