// ARP/ND suppression with BGP EVPN: the IPs in the other VTEPs' type-2 routes
// answer a local container's ARP request on this host (--suppress-arp), so a
// ping across hosts puts no broadcast on the underlay. The local containers'
// IPs come from the TAP path (here: a gratuitous ARP), as for etcd.

import { afterAll, describe, expect, it } from 'vitest';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../../src/lab/process';
import type { Container, Topology } from '../../src/lab/topology';
import { GOBGP_API, startGobgpd, type Gobgpd } from '../helpers/gobgp';
import { eventually, network, sendGratuitousArp, status } from '../helpers/hostile';
import { expectPing, startCapture, useTopology } from '../helpers/lab';

const VNI = 100;

interface FdbRow {
  mac: string;
  remote: string;
  source?: string;
}

async function fdb(topology: Topology, host: number): Promise<FdbRow[]> {
  const out = await topology.execOk(topology.hosts[host].ns, [process.execPath, CLI_PATH, 'fdb', 'show', '--json'], 15_000);
  return (JSON.parse(out) as { entries: FdbRow[] }).entries;
}

describe('ARP suppression with BGP EVPN', () => {
  const gobgpds: Gobgpd[] = [];
  const daemons: DaemonProcess[] = [];
  const lab = useTopology({ hosts: 2, ipv6: false, vnis: [VNI] }, async (topology) => {
    const [h1, h2] = topology.hosts;
    gobgpds.push(await startGobgpd(topology, h1.ns, h1.underlayIp, [h2.underlayIp]));
    gobgpds.push(await startGobgpd(topology, h2.ns, h2.underlayIp, [h1.underlayIp]));
    await Promise.all(gobgpds.map((g) => g.waitEstablished()));
    for (const h of topology.hosts) {
      daemons.push(await startDaemon(topology, h.ns, ['--vni', String(VNI), '--bridge', h.bridges.get(VNI) as string, '--local', h.underlayIp, '--evpn', GOBGP_API, '--suppress-arp']));
    }
  });
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    await Promise.all(gobgpds.map((g) => g.stop()));
  });
  const c = (host: number): Container => lab().container(host);

  it('a ping from container 1 to container 2 puts no broadcast on the underlay: host 1 answers the ARP request from EVPN', async () => {
    const topology = lab();
    for (const host of [0, 1]) await sendGratuitousArp(topology, c(host).ns, c(host).ip, c(host).mac, 1);
    // Host 2 announced container 2 with its IP, and host 1 installed it.
    expect(await eventually(async () => (await gobgpds[0].rib()).includes(`[mac:${c(1).mac}][ip:${c(1).ip}]`), 20_000), await gobgpds[0].rib()).toBe(true);
    expect(await eventually(async () => (await fdb(topology, 0)).some((r) => r.mac === c(1).mac && r.source === 'evpn'), 10_000)).toBe(true);

    await topology.execOk(c(0).ns, ['ip', 'neigh', 'flush', 'all']);
    const before = network(await status(topology, topology.hosts[0].ns), VNI).counters as unknown as { arpSuppressed?: number };
    const broadcast = new RegExp(`^${c(0).mac} > ff:ff:ff:ff:ff:ff`);
    const unicast = new RegExp(`^(${c(0).mac} > ${c(1).mac}|${c(1).mac} > ${c(0).mac}),`);
    const onHost2 = await startCapture(topology, topology.hosts[1].ns, ['-i', 'eth0', '-e', 'udp dst port 4789']);
    await expectPing(topology, c(0), c(1));
    const sawUnicast = await onHost2.waitFor(unicast);
    const host2 = await onHost2.stop();
    expect(sawUnicast, host2.join('\n')).toBe(true);
    expect(host2.filter((l) => broadcast.test(l)), host2.join('\n')).toEqual([]);
    const after = network(await status(topology, topology.hosts[0].ns), VNI).counters as unknown as { arpSuppressed: number };
    expect(after.arpSuppressed).toBeGreaterThan(before.arpSuppressed ?? 0);
  });
});
