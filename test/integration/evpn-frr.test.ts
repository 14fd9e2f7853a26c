// Issue 17, proven against FRR: host 1 runs tsvtep + gobgpd, host 2 runs FRR
// (zebra + bgpd, advertise-all-vni) with kernel vxlan nolearning on its
// bridge, iBGP AS 65000. No --peer anywhere. Later a third host (tsvtep +
// gobgpd) joins, and host 1's container moves to host 2.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tcpTransfer } from '../../src/lab/checks';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../../src/lab/process';
import { runCommand, Topology } from '../../src/lab/topology';
import { addKernelVxlan, startFrr, type FrrHost } from '../helpers/frr';
import { GOBGP_API, sleep, startGobgpd, type Gobgpd } from '../helpers/gobgp';
import { expectPing, expectTransfer } from '../helpers/lab';

const VNI = 100;

interface FdbRow {
  vni: number;
  mac: string;
  remote: string;
  source: string;
}
interface FrrMacs {
  macs?: Record<string, { type: string; remoteVtep?: string; localSequence?: number; remoteSequence?: number }>;
}

describe('BGP EVPN: tsvtep + gobgpd on host 1, FRR + kernel vxlan on host 2', () => {
  let topology: Topology;
  const gobgpds: Gobgpd[] = [];
  const daemons: DaemonProcess[] = [];
  let frr: FrrHost;
  let movedNs: string | undefined;

  const ip = (host: number) => topology.hosts[host].underlayIp;
  const cli = (host: number, args: string[]) => topology.execOk(topology.hosts[host].ns, [process.execPath, CLI_PATH, ...args], 15_000);
  const fdb = async (host: number): Promise<FdbRow[]> => (JSON.parse(await cli(host, ['fdb', 'show', '--json'])) as { entries: FdbRow[] }).entries;
  const peerAddresses = async (host: number): Promise<string[]> =>
    (JSON.parse(await cli(host, ['peers', '--json'])) as { peers: { address: string }[] }).peers.map((p) => p.address).sort();
  const frrMacs = async (): Promise<FrrMacs['macs']> => (JSON.parse(await frr.vtysh(`show evpn mac vni ${VNI} json`)) as FrrMacs).macs ?? {};
  const until = async (what: string, check: () => Promise<boolean>, deadlineMs = 30_000): Promise<void> => {
    const end = Date.now() + deadlineMs;
    while (!(await check())) {
      if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
      await sleep(250);
    }
  };
  const startVtep = (host: number): Promise<DaemonProcess> => {
    const h = topology.hosts[host];
    // Local MACs age out after 10 s of silence (seen on the TAP path), so that the ageing test is short.
    return startDaemon(topology, h.ns, ['--vni', String(VNI), '--bridge', h.bridges.get(VNI) as string, '--local', h.underlayIp, '--evpn', GOBGP_API, '--ageing', '10']);
  };

  beforeAll(async () => {
    // The kernel's vxlan device takes 1450 (1500 - 50) and the bridge follows its smallest port,
    // so the containers get 1450 too, as in the kernel interop test.
    topology = await Topology.create({ hosts: 3, ipv6: true, containerMtu: 1450 });
    const [h1, h2, h3] = topology.hosts;
    await addKernelVxlan(topology, h2.ns, VNI, h2.underlayIp, h2.bridges.get(VNI) as string);
    frr = await startFrr(topology, h2.ns, h2.underlayIp, [h1.underlayIp, h3.underlayIp], VNI);
    gobgpds.push(await startGobgpd(topology, h1.ns, h1.underlayIp, [h2.underlayIp, h3.underlayIp]));
    await gobgpds[0].waitEstablished([h2.underlayIp]);
    daemons.push(await startVtep(0));
  }, 90_000);

  afterAll(async () => {
    if (process.env.EVPN_DEBUG) {
      for (const d of daemons) console.log(d.log());
      console.log(frr?.log().slice(-4000));
    }
    await Promise.all(daemons.map((d) => d.stop()));
    await Promise.all(gobgpds.map((g) => g.stop()));
    await frr?.stop();
    if (movedNs) await runCommand('ip', ['netns', 'del', movedNs], 10_000);
    await topology?.destroy();
  });

  it('each side has the other as a VTEP of VNI 100: tsvtep as evpn peer, FRR as remote VTEP with a kernel flood entry', async () => {
    await until('tsvtep has FRR as a peer', async () => (await peerAddresses(0)).includes(ip(1)));
    await until('FRR has tsvtep as a remote VTEP', async () => (await frr.vtysh(`show evpn vni ${VNI}`)).includes(ip(0)));
    expect(await frr.kernelFdb()).toMatch(new RegExp(`00:00:00:00:00:00 dst ${ip(0).replace(/\./g, '\\.')} `));
  });

  it('containers ping both ways (IPv4 and IPv6 inside)', async () => {
    const [c1, c2] = [topology.container(0), topology.container(1)];
    await expectPing(topology, c1, c2, 4);
    await expectPing(topology, c2, c1, 4);
    await expectPing(topology, c1, c2, 6);
    await expectPing(topology, c2, c1, 6);
  });

  it("FRR lists host 1's container behind host 1, the kernel has it as extern_learn, and tsvtep has host 2's container from EVPN", async () => {
    const [c1, c2] = [topology.container(0), topology.container(1)];
    await until('FRR has container 1 as remote', async () => (await frrMacs())?.[c1.mac]?.remoteVtep === ip(0));
    expect((await frrMacs())?.[c1.mac]).toMatchObject({ type: 'remote', remoteVtep: ip(0) });
    expect(await frr.vtysh(`show evpn mac vni ${VNI}`)).toMatch(new RegExp(`${c1.mac}\\s+remote\\s+${ip(0).replace(/\./g, '\\.')}`));
    await until('the kernel FDB has container 1', async () => (await frr.kernelFdb()).includes(c1.mac));
    // zebra installs it on the vxlan device towards host 1 (and the bridge's own entry), both extern_learn.
    const entries = (await frr.kernelFdb()).split('\n').filter((line) => line.startsWith(c1.mac));
    expect(entries.some((line) => line.includes(`dst ${ip(0)} `) && line.includes('extern_learn')), entries.join('\n')).toBe(true);
    await until('tsvtep has container 2 from EVPN', async () => (await fdb(0)).some((e) => e.mac === c2.mac && e.source === 'evpn'));
    expect((await fdb(0)).find((e) => e.mac === c2.mac)).toMatchObject({ remote: ip(1), source: 'evpn' });
  });

  it('20 MiB over TCP both ways arrive intact', async () => {
    const [c1, c2] = [topology.container(0), topology.container(1)];
    await expectTransfer(topology, c1, c2, 4);
    await expectTransfer(topology, c2, c1, 4);
  });

  it("a transfer survives a restart of host 1's gobgpd, and tsvtep announces everything again", async () => {
    const [c1, c2] = [topology.container(0), topology.container(1)];
    const bytes = 64 * 1024 * 1024;
    const transfer = tcpTransfer(topology, c1, c2, { bytes, timeoutMs: 90_000 });
    await sleep(300);
    await gobgpds[0].restart();
    const result = await transfer;
    expect(result.receivedBytes).toBe(bytes);
    expect(result.receivedSha256).toBe(result.sentSha256);
    await until('FRR has tsvtep back', async () => (await frrMacs())?.[c1.mac]?.remoteVtep === ip(0), 40_000);
    expect(daemons[0].log()).toMatch(/EVPN: gobgpd at 127\.0\.0\.1:50051 lost/);
    expect(daemons[0].log()).toMatch(/EVPN: gobgpd at 127\.0\.0\.1:50051 is back/);
    await expectPing(topology, c2, c1, 4);
  });

  it('host 1 container goes silent and ages out: FRR withdraws it from its MACs and the kernel FDB', async () => {
    const c1 = topology.container(0);
    // tsvtep runs with --ageing 10: a container silent that long is withdrawn.
    await until('FRR no longer has container 1', async () => (await frrMacs())?.[c1.mac] === undefined, 40_000);
    expect(await frr.kernelFdb()).not.toContain(c1.mac);
    await expectPing(topology, c1, topology.container(1), 4);
    await until('FRR has container 1 again', async () => (await frrMacs())?.[c1.mac]?.remoteVtep === ip(0));
  });

  it('a third host (tsvtep + gobgpd) joins: the flood lists grow on both sides and its container is reachable', async () => {
    const h3 = topology.hosts[2];
    gobgpds.push(await startGobgpd(topology, h3.ns, h3.underlayIp, [ip(0), ip(1)]));
    await gobgpds[1].waitEstablished();
    daemons.push(await startVtep(2));
    await until('host 1 has hosts 2 and 3', async () => (await peerAddresses(0)).join() === [ip(1), ip(2)].sort().join());
    await until('host 3 has hosts 1 and 2', async () => (await peerAddresses(2)).join() === [ip(0), ip(1)].sort().join());
    await until('FRR has host 3 as a remote VTEP', async () => (await frr.kernelFdb()).includes(`00:00:00:00:00:00 dst ${ip(2)} `));
    const [c1, c2, c3] = [topology.container(0), topology.container(1), topology.container(2)];
    await expectPing(topology, c3, c1, 4);
    await expectPing(topology, c3, c2, 4);
    await expectTransfer(topology, c3, c2, 4);
  });

  it("host 1's container moves to host 2: FRR announces it with a higher sequence number and tsvtep follows", async () => {
    const c1 = topology.container(0);
    const h2 = topology.hosts[1];
    await until('FRR has container 1 behind host 1', async () => (await frrMacs())?.[c1.mac]?.remoteVtep === ip(0));
    // Unplug it from host 1 and plug the same MAC and IP into host 2's bridge.
    await topology.execOk(c1.ns, ['ip', 'link', 'del', 'eth0']);
    movedNs = `${topology.prefix}-moved`;
    await runCommand('ip', ['netns', 'add', movedNs], 10_000);
    await topology.execOk(h2.ns, ['ip', 'link', 'add', 'vmoved', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', movedNs]);
    await topology.execOk(movedNs, ['ip', 'link', 'set', 'eth0', 'address', c1.mac]);
    await topology.execOk(movedNs, ['ip', 'addr', 'add', `${c1.ip}/16`, 'dev', 'eth0']);
    await topology.execOk(movedNs, ['ip', 'link', 'set', 'eth0', 'up']);
    await topology.execOk(h2.ns, ['ip', 'link', 'set', 'vmoved', 'master', h2.bridges.get(VNI) as string, 'up']);
    const moved = { ...c1, ns: movedNs, host: 1 };
    await expectPing(topology, moved, topology.container(1), 4);
    await until('FRR has container 1 as local', async () => (await frrMacs())?.[c1.mac]?.type === 'local');
    expect((await frrMacs())?.[c1.mac]?.localSequence).toBeGreaterThan(0);
    await until('tsvtep on host 1 follows it to host 2', async () => (await fdb(0)).some((e) => e.mac === c1.mac && e.remote === ip(1) && e.source === 'evpn'));
    await until('tsvtep on host 3 follows it to host 2', async () => (await fdb(2)).some((e) => e.mac === c1.mac && e.remote === ip(1) && e.source === 'evpn'));
    await expectPing(topology, topology.container(2), moved, 4);
  });
});
