// A routed underlay as in seed 004: each host in its own subnet (10.0.1.0/24,
// 10.0.2.0/24, ...) behind a router namespace, containers on one L2 segment.

import { describe } from 'vitest';
import { itCarriesTrafficBothWays, startVteps, useTopology } from '../helpers/lab';

for (const underlay of [4, 6] as const) {
  describe(`two hosts in different subnets behind a router, IPv${underlay} underlay`, () => {
    itCarriesTrafficBothWays(useTopology({ hosts: 2, routed: true, ipv6: true }, (topology) => startVteps(topology, { family: underlay })));
  });
}
