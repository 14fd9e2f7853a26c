// The wire constants of the protocols the data plane reads and writes, in one
// table: ethertypes, header sizes, and what VXLAN adds on the underlay.

export const ETH_HEADER_LEN = 14;
export const VLAN_TAG_LEN = 4;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ETHERTYPE_VLAN = 0x8100;

export const IPV4_HEADER_LEN = 20;
export const IPV6_HEADER_LEN = 40;
export const UDP_HEADER_LEN = 8;
export const VXLAN_HEADER_LEN = 8;

/** Outer IPv4 + UDP + VXLAN + inner Ethernet: the underlay MTU minus this is the overlay MTU. */
export const VXLAN_OVERHEAD_IPV4 = IPV4_HEADER_LEN + UDP_HEADER_LEN + VXLAN_HEADER_LEN + ETH_HEADER_LEN;
/** The same over an IPv6 underlay. */
export const VXLAN_OVERHEAD_IPV6 = IPV6_HEADER_LEN + UDP_HEADER_LEN + VXLAN_HEADER_LEN + ETH_HEADER_LEN;
