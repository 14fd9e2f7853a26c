// Issue 9, Open vSwitch bridges: seed 002 with tsvtep in place of Open
// vSwitch's own vxlan ports on host 1. Each host runs Open vSwitch (Debian's,
// userspace datapath) with two bridges, ovs-br0 and ovs-br1, and two
// "containers" attached to them by veth ports (192.168.1.x on ovs-br0,
// 192.168.2.x on ovs-br1); host 1 has the gateway internal ports veth0 and
// veth1. Host 2 tunnels as the seed does, `type=vxlan options:remote_ip=…
// options:key=1000` (and 2000); host 1 runs tsvtep with VNIs 1000 and 2000 on
// ovs-br0 and ovs-br1. tsvtep adds its TAPs as OVS ports and removes them
// when a network is removed and when it stops.

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../../src/lab/process';
import type { Container } from '../../src/lab/topology';
import { expectPing, expectTransfer } from '../helpers/lab';
import { addNetdevBridge, addOvsContainer, moveUnderlayToBridge, useOvsLab, type OvsLab } from '../helpers/ovs';

const NETWORKS = [
  { vni: 1000, bridge: 'ovs-br0', subnet: '192.168.1', gatewayPort: 'veth0', vxlanPort: 'vxlan0' },
  { vni: 2000, bridge: 'ovs-br1', subnet: '192.168.2', gatewayPort: 'veth1', vxlanPort: 'vxlan1' },
];
/** As seed 002 sets on its gateway ports: 1500 minus the 50 bytes of VXLAN over IPv4. */
const MTU = 1450;

function configFile(lab: OvsLab, vnis: number[]): string {
  const peer = lab.topology.hosts[1].underlayIp;
  const lines = ['networks:'];
  for (const n of NETWORKS.filter((x) => vnis.includes(x.vni))) lines.push(`  - vni: ${n.vni}`, `    bridge: ${n.bridge}`, `    peers: [${peer}]`);
  const file = path.join(lab.dir, 'tsvtep.yaml');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

describe('tsvtep on Open vSwitch bridges, Open vSwitch vxlan ports on the other host (seed 002)', () => {
  /** docker1..docker4 of the seed: [host][network]. */
  const containers: Container[][] = [[], []];
  let daemon: DaemonProcess | undefined;

  const lab = useOvsLab(async (l) => {
    const { topology, ovs } = l;
    for (const host of topology.hosts) {
      const i = host.index;
      for (const [k, n] of NETWORKS.entries()) {
        await addNetdevBridge(ovs[i], n.bridge);
        const c = await addOvsContainer(l, i, {
          ns: `${topology.prefix}-docker${i * 2 + k + 1}`,
          bridge: n.bridge,
          port: `d${i * 2 + k + 1}eth0`,
          ip: `${n.subnet}.${11 + i}`,
          prefixLength: 24,
          mac: `02:00:0${i + 1}:00:0${k + 1}:${11 + i}`,
          mtu: MTU,
          vni: n.vni,
        });
        containers[i].push(c);
      }
    }
    // Host 1: the gateways, as in the seed (internal ports with addresses).
    for (const n of NETWORKS) {
      await ovs[0].vsctl(['add-port', n.bridge, n.gatewayPort, '--', 'set', 'interface', n.gatewayPort, 'type=internal']);
      await topology.execOk(topology.hosts[0].ns, ['ip', 'address', 'add', `${n.subnet}.1/24`, 'dev', n.gatewayPort]);
      await topology.execOk(topology.hosts[0].ns, ['ip', 'link', 'set', 'dev', n.gatewayPort, 'up', 'mtu', String(MTU)]);
    }
    // Host 2: Open vSwitch's own tunnels, as in the seed, over its userspace tunnelling.
    const h1 = topology.hosts[0];
    const h2 = topology.hosts[1];
    await moveUnderlayToBridge(ovs[1], h2.underlayIf, `${h2.underlayIp}/24`);
    for (const n of NETWORKS) {
      await ovs[1].vsctl(['add-port', n.bridge, n.vxlanPort, '--', 'set', 'interface', n.vxlanPort, 'type=vxlan', `options:remote_ip=${h1.underlayIp}`, `options:key=${n.vni}`]);
    }
    // Host 1 sends from a kernel UDP socket over a veth, which leaves the UDP
    // checksum to "hardware"; OVS's userspace datapath on host 2 reads the
    // packet through AF_PACKET, unfinished, and drops it as a bad checksum.
    // A real NIC (or this) finishes the checksum before the wire.
    await topology.execOk(h1.ns, ['ethtool', '-K', h1.underlayIf, 'tx', 'off']);
    daemon = await startDaemon(topology, h1.ns, ['--config', configFile(l, [1000, 2000])], 15_000, ovs[0].env);
  });

  const ovs = (host: number) => lab().ovs[host];
  const h1 = () => lab().topology.hosts[0];
  const ports = async (host: number, bridge: string): Promise<string[]> => (await ovs(host).vsctl(['list-ports', bridge])).split('\n').filter((p) => p !== '');
  const cli = (args: string[]) => lab().topology.exec(h1().ns, [process.execPath, CLI_PATH, ...args]);

  async function until(condition: () => Promise<boolean>, deadlineMs = 10_000): Promise<boolean> {
    const end = Date.now() + deadlineMs;
    while (Date.now() < end) {
      if (await condition()) return true;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return condition();
  }

  it('debug hold', async () => {
    const t = lab().topology;
    require('node:fs').writeFileSync('/tmp/ovsdbg.json', JSON.stringify({ prefix: t.prefix, dir: lab().dir, c: containers }));
    const end = Date.now() + 400_000;
    while (Date.now() < end && !require('node:fs').existsSync('/tmp/ovsdbg.stop')) await new Promise((r) => setTimeout(r, 500));
  }, 420_000);
});
