// Issue 17, BGP EVPN between two tsvtep hosts: each host runs its own gobgpd
// (Debian's), peered iBGP AS 65000 for l2vpn-evpn, and tsvtep with --evpn and
// no --peer at all. The flood lists come from type-3 routes, the remote MACs
// from type-2 routes.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../../src/lab/process';
import { Topology } from '../../src/lab/topology';
import { GOBGP_API, sleep, startGobgpd, type Gobgpd } from '../helpers/gobgp';
import { expectPing, expectTransfer } from '../helpers/lab';

const VNI = 100;

interface PeerRow {
  address: string;
  vnis: number[];
  sources: string[];
}
interface FdbRow {
  vni: number;
  mac: string;
  remote: string;
  source: string;
}

describe('BGP EVPN through gobgpd, two tsvtep hosts, no --peer', () => {
  let topology: Topology;
  const gobgpds: Gobgpd[] = [];
  const daemons: DaemonProcess[] = [];

  const cli = async (host: number, args: string[]): Promise<string> =>
    topology.execOk(topology.hosts[host].ns, [process.execPath, CLI_PATH, ...args], 15_000);
  const peers = async (host: number): Promise<PeerRow[]> => (JSON.parse(await cli(host, ['peers', '--json'])) as { peers: PeerRow[] }).peers;
  const fdb = async (host: number): Promise<FdbRow[]> => (JSON.parse(await cli(host, ['fdb', 'show', '--json'])) as { entries: FdbRow[] }).entries;
  const until = async (what: string, check: () => Promise<boolean>, deadlineMs = 20_000): Promise<void> => {
    const end = Date.now() + deadlineMs;
    while (!(await check())) {
      if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
      await sleep(250);
    }
  };
  const startVtep = async (host: number): Promise<DaemonProcess> => {
    const h = topology.hosts[host];
    // Local MACs age out after 10 s of silence (seen on the TAP path), so that the ageing test is short.
    return startDaemon(topology, h.ns, ['--vni', String(VNI), '--bridge', h.bridges.get(VNI) as string, '--local', h.underlayIp, '--evpn', GOBGP_API, '--ageing', '10']);
  };

  beforeAll(async () => {
    topology = await Topology.create({ hosts: 2, ipv6: true });
    const [h1, h2] = topology.hosts;
    gobgpds.push(await startGobgpd(topology, h1.ns, h1.underlayIp, [h2.underlayIp]));
    gobgpds.push(await startGobgpd(topology, h2.ns, h2.underlayIp, [h1.underlayIp]));
    await Promise.all(gobgpds.map((g) => g.waitEstablished()));
    daemons.push(await startVtep(0), await startVtep(1));
  });

  afterAll(async () => {
    if (process.env.EVPN_DEBUG) {
      for (const d of daemons) console.log(d.log());
      for (const g of gobgpds) console.log(await g.rib().catch((e) => String(e)), g.log().slice(-3000));
    }
    await Promise.all(daemons.map((d) => d.stop()));
    await Promise.all(gobgpds.map((g) => g.stop()));
    await topology?.destroy();
  });

  it('builds each flood list from the other host\'s type-3 route: the peer shows as evpn', async () => {
    await until('host 1 has host 2 as an evpn peer', async () => (await peers(0)).some((p) => p.address === topology.hosts[1].underlayIp));
    expect(await peers(0)).toEqual([expect.objectContaining({ address: topology.hosts[1].underlayIp, vnis: [VNI], sources: ['evpn'] })]);
    expect(await peers(1)).toEqual([expect.objectContaining({ address: topology.hosts[0].underlayIp, vnis: [VNI], sources: ['evpn'] })]);
    // gobgpd on host 2 has host 1's route: ingress replication towards 10.0.1.41, RT 65000:100, VXLAN.
    const h1 = topology.hosts[0].underlayIp;
    const route = (await gobgpds[1].rib()).split('\n').find((line) => line.includes(`[type:multicast][rd:${h1}:1][etag:0][ip:${h1}]`));
    expect(route).toBeDefined();
    expect(route).toContain('{Extcomms: [65000:100], [VXLAN]}');
    expect(route).toContain(`{Pmsi: type: ingress-repl, label: 100, tunnel-id: ${h1}}`);
  });

  it('containers ping each other both ways (IPv4 and IPv6 inside)', async () => {
    const [c1, c2] = [topology.container(0), topology.container(1)];
    await expectPing(topology, c1, c2, 4);
    await expectPing(topology, c2, c1, 4);
    await expectPing(topology, c1, c2, 6);
  });

  it("each host's containers reach the other's FDB as type-2 routes, shown as evpn in fdb show", async () => {
    const [c1, c2] = [topology.container(0), topology.container(1)];
    await until('host 1 has container 2 from EVPN', async () => (await fdb(0)).some((e) => e.mac === c2.mac && e.source === 'evpn'));
    await until('host 2 has container 1 from EVPN', async () => (await fdb(1)).some((e) => e.mac === c1.mac && e.source === 'evpn'));
    expect((await fdb(0)).find((e) => e.mac === c2.mac)).toMatchObject({ remote: topology.hosts[1].underlayIp, source: 'evpn' });
    const text = await cli(0, ['fdb', 'show']);
    expect(text).toContain(`${c2.mac} dev tsv${VNI} dst ${topology.hosts[1].underlayIp} vni ${VNI} self extern_learn evpn`);
    expect(await gobgpds[1].rib()).toContain(`[mac:${c1.mac}]`);
  });

  it("announces a container's IP with its MAC once its ARP crossed the TAP", async () => {
    const c1 = topology.container(0);
    // The pings above resolved container 2 by ARP: container 1's request, a broadcast, reached host 1's TAP.
    await until('host 2 has container 1 with its IP', async () => (await gobgpds[1].rib()).includes(`[mac:${c1.mac}][ip:${c1.ip}]`));
  });

  it('skips a route it cannot use (type-3 without a PMSI tunnel) and keeps the flood list as it was', async () => {
    await topology.execOk(topology.hosts[1].ns, ['gobgp', 'global', 'rib', '-a', 'evpn', 'add', 'multicast', '10.0.1.99', 'etag', '0', 'rd', '10.0.1.99:1', 'rt', '65000:100']);
    await until('host 1 has the route', async () => (await gobgpds[0].rib()).includes('[ip:10.0.1.99]'));
    await sleep(500);
    expect((await peers(0)).map((p) => p.address)).toEqual([topology.hosts[1].underlayIp]);
    await topology.execOk(topology.hosts[1].ns, ['gobgp', 'global', 'rib', '-a', 'evpn', 'del', 'multicast', '10.0.1.99', 'etag', '0', 'rd', '10.0.1.99:1']);
  });

  it('20 MiB over TCP both ways arrive intact', async () => {
    const [c1, c2] = [topology.container(0), topology.container(1)];
    await expectTransfer(topology, c1, c2, 4);
    await expectTransfer(topology, c2, c1, 4);
  });

  it('a container that goes silent ages out (--ageing 10) and its type-2 route is withdrawn', async () => {
    const c1 = topology.container(0);
    // Container 1 sends nothing from now on.
    await until('host 2 no longer has container 1 from EVPN', async () => !(await fdb(1)).some((e) => e.mac === c1.mac && e.source === 'evpn'), 45_000);
    expect(await gobgpds[1].rib()).not.toContain(`[mac:${c1.mac}]`);
    // It speaks again: announced again.
    await expectPing(topology, c1, topology.container(1), 4);
    await until('host 2 has container 1 from EVPN again', async () => (await fdb(1)).some((e) => e.mac === c1.mac && e.source === 'evpn'));
  });

  it('a tsvtep that stops withdraws its routes: it leaves the other flood list', async () => {
    const code = await daemons[1].stop();
    expect(code).toBe(0);
    await until('host 1 has no peer left', async () => (await peers(0)).length === 0, 15_000);
    expect(await gobgpds[0].rib()).not.toContain(`[ip:${topology.hosts[1].underlayIp}]`);
    daemons[1] = await startVtep(1);
    await until('host 1 has host 2 again', async () => (await peers(0)).length === 1);
    await expectPing(topology, topology.container(0), topology.container(1), 4);
  });

  it('a tsvtep killed without withdrawing finds its old routes in gobgpd when it starts again, and deletes those no longer true', async () => {
    const c1 = topology.container(0);
    await until('host 2 has container 1 from EVPN', async () => (await fdb(1)).some((e) => e.mac === c1.mac && e.source === 'evpn'));
    const killed = new Promise((resolve) => daemons[0].child.once('exit', resolve));
    daemons[0].child.kill('SIGKILL');
    await killed;
    // Container 1 leaves host 1 while its tsvtep is down; gobgpd still has its route.
    await topology.execOk(c1.ns, ['ip', 'link', 'del', 'eth0']);
    expect(await gobgpds[0].rib()).toContain(`[mac:${c1.mac}]`);
    daemons[0] = await startVtep(0);
    await until('host 1 deleted the stale route', async () => !(await gobgpds[0].rib()).includes(`[mac:${c1.mac}]`));
    await until('host 2 no longer has container 1', async () => !(await fdb(1)).some((e) => e.mac === c1.mac && e.source === 'evpn'));
    expect((await peers(1)).map((p) => p.address)).toEqual([topology.hosts[0].underlayIp]);
  });
});
