// Interoperation with the reference implementation: tsvtep on host 1, the
// kernel's vxlan driver (set up as the tutorials do) on host 2. If they talk
// both ways, tsvtep's wire format is right.
//
// The kernel's vxlan device gets the underlay MTU minus its overhead (1450 over
// IPv4, 1430 over IPv6) and a bridge takes the smallest MTU of its ports, so
// the containers get that MTU too: with 1500 the kernel side would drop every
// full-sized frame as too big for its vxlan device.

import { describe } from 'vitest';
import { addKernelVxlan } from '../../src/lab/kernel';
import { itCarriesTrafficBothWays, startVteps, useTopology } from '../helpers/lab';

const VNI = 100;

for (const underlay of [4, 6] as const) {
  describe(`tsvtep on host 1, kernel vxlan on host 2, IPv${underlay} underlay`, () => {
    const options = { hosts: 2, vnis: [VNI], containerMtu: underlay === 4 ? 1450 : 1430 };
    const lab = useTopology(options, async (topology) => {
      const [h1, h2] = topology.hosts;
      // addKernelVxlan also turns off tx checksum offload on host 2's underlay
      // veth: the kernel would otherwise leave the inner TCP/UDP checksums of
      // the packets it encapsulates for a NIC to fill in, and veth never does.
      await addKernelVxlan(topology, h2, { vni: VNI, peers: [underlay === 4 ? h1.underlayIp : h1.underlayIp6] });
      await startVteps(topology, { family: underlay, hosts: [0] });
    });
    itCarriesTrafficBothWays(lab);
  });
}
