// MAC/IP distribution and ARP suppression through etcd: each tsvtep publishes
// the MACs (and IPs) of its local containers, installs the others' as remote
// entries, and answers ARP for known IPs itself, so a ping across hosts puts
// no broadcast on the underlay. A container that moves to another host is
// followed as soon as that host has seen it.

import { afterAll, describe, expect, it } from 'vitest';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../../src/lab/process';
import type { Container, Topology } from '../../src/lab/topology';
import { addressTheSwitch, startEtcd, type EtcdInstance } from '../helpers/etcd';
import { eventually, network, sendGratuitousArp, status } from '../helpers/hostile';
import { expectPing, startCapture, useTopology } from '../helpers/lab';
import { scrape } from '../helpers/metrics';

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

describe('MAC/IP distribution and ARP suppression through etcd', () => {
  let etcd: EtcdInstance | undefined;
  const daemons: DaemonProcess[] = [];
  const lab = useTopology({ hosts: 3, ipv6: true, vnis: [VNI] }, async (topology) => {
    etcd = await startEtcd(topology, topology.coreNs, await addressTheSwitch(topology));
    for (const h of topology.hosts) {
      const args = ['--vni', String(VNI), '--bridge', h.bridges.get(VNI) as string, '--etcd', etcd.url, '--etcd-fdb', '--suppress-arp', '--metrics', '127.0.0.1:9477'];
      daemons.push(await startDaemon(topology, h.ns, args));
    }
  });
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    await etcd?.destroy();
  });
  const c = (host: number): Container => lab().container(host);
  const ip = (host: number): string => lab().hosts[host].underlayIp;

  it('each container, once heard (gratuitous ARP), is published with its IP and installed on the other hosts', async () => {
    const topology = lab();
    for (const host of [0, 1, 2]) await sendGratuitousArp(topology, c(host).ns, c(host).ip, c(host).mac, 1);
    expect(
      await eventually(async () => {
        const rows = await fdb(topology, 0);
        return rows.some((r) => r.mac === c(1).mac && r.remote === ip(1) && r.source === 'etcd') && rows.some((r) => r.mac === c(2).mac && r.remote === ip(2) && r.source === 'etcd');
      }, 10_000),
      JSON.stringify(await fdb(topology, 0)),
    ).toBe(true);
    const keys = await (etcd as EtcdInstance).ctl(['get', '--prefix', `/tsvtep/v1/macs/${VNI}/${c(1).mac}/`]);
    expect(keys).toContain(`"ips":["${c(1).ip}"]`);
  });

  it('a ping from container 1 to container 2 puts no broadcast on the underlay: the ARP request is answered by host 1', async () => {
    const topology = lab();
    await topology.execOk(c(0).ns, ['ip', 'neigh', 'flush', 'all']);
    const before = network(await status(topology, topology.hosts[0].ns), VNI).counters as unknown as { arpSuppressed: number };
    // Any broadcast from container 1, as the inner frame of a VXLAN datagram, on host 2's and host 3's underlay.
    const broadcast = new RegExp(`^${c(0).mac} > ff:ff:ff:ff:ff:ff`);
    const unicast = new RegExp(`^(${c(0).mac} > ${c(1).mac}|${c(1).mac} > ${c(0).mac}),`);
    const onHost2 = await startCapture(topology, topology.hosts[1].ns, ['-i', 'eth0', '-e', 'udp dst port 4789']);
    const onHost3 = await startCapture(topology, topology.hosts[2].ns, ['-i', 'eth0', '-e', 'udp dst port 4789']);
    await expectPing(topology, c(0), c(1));
    const sawUnicast = await onHost2.waitFor(unicast);
    const host2 = await onHost2.stop();
    const host3 = await onHost3.stop();
    expect(sawUnicast, host2.join('\n')).toBe(true);
    expect(host2.filter((l) => broadcast.test(l)), host2.join('\n')).toEqual([]);
    expect(host3.filter((l) => broadcast.test(l) || unicast.test(l)), host3.join('\n')).toEqual([]);
    const after = network(await status(topology, topology.hosts[0].ns), VNI).counters as unknown as { arpSuppressed: number };
    expect(after.arpSuppressed).toBeGreaterThan(before.arpSuppressed ?? 0);
  });

  it('IPv6: a neighbour solicitation for a known address is answered by host 1 (nd_suppressed)', async () => {
    const topology = lab();
    // Each side uses its IPv6 address once, so that its host publishes it.
    await expectPing(topology, c(1), c(0), 6);
    expect(
      await eventually(async () => {
        const keys = await (etcd as EtcdInstance).ctl(['get', '--prefix', `/tsvtep/v1/macs/${VNI}/${c(1).mac}/`]);
        return keys.includes(`"${c(1).ip6}"`);
      }, 10_000),
    ).toBe(true);
    await topology.execOk(c(0).ns, ['ip', '-6', 'neigh', 'flush', 'all']);
    const before = network(await status(topology, topology.hosts[0].ns), VNI).counters as unknown as { ndSuppressed: number };
    await expectPing(topology, c(0), c(1), 6);
    const after = network(await status(topology, topology.hosts[0].ns), VNI).counters as unknown as { ndSuppressed: number };
    expect(after.ndSuppressed).toBeGreaterThan(before.ndSuppressed ?? 0);
  });

  it('an unknown IP is still flooded', async () => {
    const topology = lab();
    const onHost2 = await startCapture(topology, topology.hosts[1].ns, ['-i', 'eth0', '-e', 'udp dst port 4789']);
    await topology.exec(c(0).ns, ['ping', '-c', '1', '-W', '1', '172.18.0.99']);
    expect(await onHost2.waitFor(/who-has 172\.18\.0\.99/), (await onHost2.stop()).join('\n')).toBe(true);
    await onHost2.stop();
  });

  it('a container moved from host 2 to host 3 answers its next ping', async () => {
    const topology = lab();
    const moved = c(1);
    const h2 = topology.hosts[1].ns;
    const h3 = topology.hosts[2].ns;
    // Unplug it from host 2's bridge, plug the same namespace, MAC and IP into host 3's.
    await topology.execOk(h2, ['ip', 'link', 'del', `v${VNI}`]);
    await topology.execOk(h3, ['ip', 'link', 'add', 'vmoved', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', moved.ns, 'address', moved.mac]);
    await topology.execOk(h3, ['ip', 'link', 'set', 'vmoved', 'master', topology.hosts[2].bridges.get(VNI) as string, 'up']);
    await topology.execOk(moved.ns, ['ip', 'addr', 'add', `${moved.ip}/16`, 'dev', 'eth0']);
    await topology.execOk(moved.ns, ['ip', 'link', 'set', 'eth0', 'up']);
    await sendGratuitousArp(topology, moved.ns, moved.ip, moved.mac, 1);
    expect(
      await eventually(async () => (await fdb(topology, 0)).some((r) => r.mac === moved.mac && r.remote === ip(2)), 10_000),
      JSON.stringify(await fdb(topology, 0)),
    ).toBe(true);
    await expectPing(topology, c(0), moved);
    // Host 2 gave it up: its own announcement is gone from etcd.
    expect(await eventually(async () => !(await (etcd as EtcdInstance).ctl(['get', '--prefix', '--keys-only', `/tsvtep/v1/macs/${VNI}/${moved.mac}/`])).includes(ip(1)), 5_000)).toBe(true);
    expect(daemons[0].log()).toMatch(/moved from 10\.0\.1\.42 to 10\.0\.1\.43/);
    const samples = await scrape(topology, topology.hosts[0].ns, 'http://127.0.0.1:9477/metrics');
    expect(samples.value('tsvtep_etcd_mac_moves_total')).toBe(1);
    expect(samples.value('tsvtep_arp_suppressed_total', { vni: String(VNI) })).toBeGreaterThan(0);
  });
});
