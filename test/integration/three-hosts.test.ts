// Three hosts, each with tsvtep peering with the other two: broadcast goes to
// every peer (head-end replication), and once the VTEPs have learned where the
// MACs live, unicast goes to its one host only.
//
// Captures run tcpdump on the hosts' underlay (eth0, VXLAN datagrams arriving
// on port 4789); tcpdump decodes the inner frame on the line after each
// datagram, with -e showing its MACs: "02:00:01:00:00:64 > ff:ff:ff:ff:ff:ff,
// ethertype ARP ...". Container MACs are 02:00:<host>:<vni>.

import { describe, expect, it } from 'vitest';
import { ping } from '../../src/lab/checks';
import { expectPing, expectTransfer, startCapture, startVteps, useTopology } from '../helpers/lab';

const UNDERLAY_VXLAN = ['-i', 'eth0', '-e', 'udp dst port 4789'];

describe('three hosts, tsvtep on each, every host a peer of the others', () => {
  const lab = useTopology({ hosts: 3, ipv6: false }, (topology) => startVteps(topology));
  const c = (host: number) => lab().container(host);

  it('the first ARP request from container 1 is flooded to hosts 2 and 3', async () => {
    const topology = lab();
    const request = new RegExp(`^${c(0).mac} > ff:ff:ff:ff:ff:ff, ethertype ARP .*Request who-has ${c(1).ip} tell ${c(0).ip}`);
    // Where the flood ends up: inside containers 2 and 3 (over their bridges),
    // and on host 3's underlay as the inner frame of a VXLAN datagram.
    const inC2 = await startCapture(topology, c(1).ns, ['-i', 'eth0', '-e', 'arp']);
    const inC3 = await startCapture(topology, c(2).ns, ['-i', 'eth0', '-e', 'arp']);
    const onHost3 = await startCapture(topology, topology.hosts[2].ns, UNDERLAY_VXLAN);

    await expectPing(topology, c(0), c(1));

    for (const capture of [inC2, inC3, onHost3]) {
      const seen = await capture.waitFor(request);
      expect(seen, (await capture.stop()).join('\n')).toBe(true);
    }
  });

  it('once learned, unicast between hosts 1 and 2 does not reach host 3', async () => {
    const topology = lab();
    const [m1, m2] = [c(0).mac, c(1).mac];
    const unicast12 = new RegExp(`^(${m1} > ${m2}|${m2} > ${m1}),`);
    // The same capture on host 2 and host 3: host 2 must see the unicast
    // (so the capture and the pattern do work), host 3 must not.
    const onHost2 = await startCapture(topology, topology.hosts[1].ns, UNDERLAY_VXLAN);
    const onHost3 = await startCapture(topology, topology.hosts[2].ns, UNDERLAY_VXLAN);

    await expectPing(topology, c(0), c(1));
    await expectPing(topology, c(1), c(0));
    await expectTransfer(topology, c(0), c(1), 4, 1024 * 1024);
    await expectTransfer(topology, c(1), c(0), 4, 1024 * 1024);

    // A broadcast at the end proves host 3's capture was still listening:
    // container 1 asks for an address nobody has.
    await ping(topology, c(0), '172.18.0.99', { count: 1, timeoutS: 1 });
    const lateFlood = new RegExp(`^${m1} > ff:ff:ff:ff:ff:ff, ethertype ARP .*Request who-has 172\\.18\\.0\\.99`);
    const sawLateFlood = await onHost3.waitFor(lateFlood);
    const sawUnicastOn2 = await onHost2.waitFor(unicast12);
    const host2 = await onHost2.stop();
    const host3 = await onHost3.stop();

    expect(sawUnicastOn2, host2.slice(0, 40).join('\n')).toBe(true);
    expect(host2.filter((line) => unicast12.test(line)).length).toBeGreaterThan(10);
    expect(sawLateFlood, host3.join('\n')).toBe(true);
    const leaked = host3.filter((line) => unicast12.test(line));
    expect(leaked.length, leaked.slice(0, 5).join('\n')).toBe(0);
  });
});
