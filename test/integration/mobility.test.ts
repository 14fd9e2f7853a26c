// Things that move, on three namespace hosts: a container that moves to
// another host (same MAC and IP, announced with a gratuitous ARP) and a peer
// whose tsvtep restarts (a new TAP with a new MAC, same underlay address).
// Both must be reachable again within seconds, not after the 300 s ageing:
// every received frame teaches its source MAC's remote, and a MAC seen behind
// another remote moves there.

import { describe, expect, it } from 'vitest';
import { waitForPing } from '../../src/lab/checks';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../../src/lab/process';
import type { Topology } from '../../src/lab/topology';
import { network, sendGratuitousArp, status } from '../helpers/hostile';
import { expectPing, startVteps, useTopology } from '../helpers/lab';

const VNI = 100;
/** "Within a few seconds": far below the 300 s an entry would take to age out. */
const REACHABLE_WITHIN_MS = 5_000;

async function fdbRemote(topology: Topology, ns: string, mac: string): Promise<string | undefined> {
  const reply = JSON.parse(await topology.execOk(ns, [process.execPath, CLI_PATH, 'fdb', 'show', '--vni', String(VNI), '--json'])) as {
    entries: { mac: string; remote: string }[];
  };
  return reply.entries.find((e) => e.mac === mac)?.remote;
}

async function tapMac(topology: Topology, ns: string): Promise<string> {
  const [link] = JSON.parse(await topology.execOk(ns, ['ip', '-j', 'link', 'show', 'dev', `tsv${VNI}`])) as { address: string }[];
  return link.address;
}

describe('containers and peers that move', () => {
  let daemons: DaemonProcess[] = [];
  const lab = useTopology({ hosts: 3, vnis: [VNI], ipv6: false }, async (topology) => {
    daemons = await startVteps(topology);
  });

  it('a peer whose tsvtep restarts (new TAP, new MAC, same address) is reachable again within seconds', async () => {
    const topology = lab();
    const h2 = topology.hosts[1];
    const c1 = topology.container(0);
    const c3 = topology.container(2);
    const c2 = topology.container(1);
    await expectPing(topology, c1, c2);
    const macBefore = await tapMac(topology, h2.ns);

    await daemons[1].stop();
    const peers = topology.hosts.filter((h) => h !== h2).flatMap((h) => ['--peer', h.underlayIp]);
    daemons[1] = await startDaemon(topology, h2.ns, ['--vni', String(VNI), '--bridge', 'br100', ...peers]);
    expect(await tapMac(topology, h2.ns)).not.toBe(macBefore);

    const started = Date.now();
    const reachable = await waitForPing(topology, c1, c2.ip, REACHABLE_WITHIN_MS);
    console.log(`restarted peer: reachable again after ${Date.now() - started} ms`);
    expect(reachable).toBe(true);
    await expectPing(topology, c2, c1);
    await expectPing(topology, c1, c3);
  });

  it('a container that moves to another host is reachable again within seconds of its gratuitous ARP', async () => {
    const topology = lab();
    const [h1, h2, h3] = topology.hosts;
    const c1 = topology.container(0);
    const moving = topology.container(1);
    await expectPing(topology, c1, moving);
    expect(await fdbRemote(topology, h1.ns, moving.mac)).toBe(h2.underlayIp);
    const movedBefore = network(await status(topology, h1.ns), VNI).counters.fdbMoved;

    // Unplug it from host 2's bridge (the earlier test left it there) and plug it into host 3's, same MAC and address.
    await topology.execOk(moving.ns, ['ip', 'link', 'del', 'eth0']);
    await topology.execOk(moving.ns, [
      'ip', 'link', 'add', 'eth0', 'address', moving.mac, 'type', 'veth', 'peer', 'name', 'vm100', 'netns', h3.ns,
    ]);
    await topology.execOk(h3.ns, ['ip', 'link', 'set', 'vm100', 'master', 'br100', 'up']);
    await topology.execOk(moving.ns, ['ip', 'addr', 'add', `${moving.ip}/16`, 'dev', 'eth0']);
    await topology.execOk(moving.ns, ['ip', 'link', 'set', 'eth0', 'up']);
    await sendGratuitousArp(topology, moving.ns, moving.ip, moving.mac);

    const started = Date.now();
    const reachable = await waitForPing(topology, c1, moving.ip, REACHABLE_WITHIN_MS);
    const ms = Date.now() - started;
    console.log(`moved container: reachable again after ${ms} ms`);
    expect(reachable).toBe(true);
    expect(await fdbRemote(topology, h1.ns, moving.mac)).toBe(h3.underlayIp);
    expect(network(await status(topology, h1.ns), VNI).counters.fdbMoved).toBeGreaterThan(movedBefore);
    await expectPing(topology, c1, moving);
    await expectPing(topology, moving, c1);
  });
});
