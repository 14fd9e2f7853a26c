// Issue 2, the working VTEP end to end: two hosts as in the tutorials
// (containers 172.18.0.11 and .12 on bridge br100, VNI 100), tsvtep on each,
// over an IPv4 and over an IPv6 underlay, carrying IPv4 and IPv6 traffic.

import { describe } from 'vitest';
import { itCarriesTrafficBothWays, startVteps, useTopology } from '../helpers/lab';

for (const underlay of [4, 6] as const) {
  describe(`two hosts, tsvtep on both, IPv${underlay} underlay`, () => {
    itCarriesTrafficBothWays(useTopology({ hosts: 2, ipv6: true }, (topology) => startVteps(topology, { family: underlay })));
  });
}
