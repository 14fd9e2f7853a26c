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
import { doctorLine, runDoctor } from '../helpers/doctor';
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

  it('finds that ovs-br0 and ovs-br1 are Open vSwitch bridges and adds its TAPs as their ports', async () => {
    expect(await ports(0, 'ovs-br0')).toContain('tsv1000');
    expect(await ports(0, 'ovs-br1')).toContain('tsv2000');
    expect(daemon?.log()).toContain('tsv1000 on Open vSwitch bridge ovs-br0');
    expect(daemon?.log()).toContain('tsv2000 on Open vSwitch bridge ovs-br1');
  });

  it('tsvtep doctor --ovs --bridge finds Open vSwitch and its bridges; FAIL where its database does not answer', async () => {
    const t = lab().topology;
    const ok = await runDoctor(t, h1().ns, ['--ovs', '--bridge', 'ovs-br0,ovs-br1', '--port', '4791'], ovs(0).env);
    expect(ok.code, ok.stdout).toBe(0);
    expect(doctorLine(ok, 'Open vSwitch')).toMatch(/^pass .*its database answers at /);
    for (const bridge of ['ovs-br0', 'ovs-br1']) expect(doctorLine(ok, `bridge ${bridge}`)).toMatch(/^pass .* an Open vSwitch bridge$/);

    const down = await runDoctor(t, h1().ns, ['--ovs', '--port', '4791'], { OVS_RUNDIR: path.join(lab().dir, 'nowhere') });
    expect(down.code).toBe(1);
    expect(doctorLine(down, 'Open vSwitch')).toMatch(/^FAIL .*its database does not answer at .*nowhere\/db\.sock: start it/);
  });

  it('containers on the same VNI ping each other both ways, and host 2 reaches the gateways on host 1', async () => {
    const t = lab().topology;
    for (const k of [0, 1]) {
      await expectPing(t, containers[0][k], containers[1][k]);
      await expectPing(t, containers[1][k], containers[0][k]);
      await expectPing(t, containers[1][k], { ...containers[0][k], ip: `${NETWORKS[k].subnet}.1` });
    }
  });

  it('keeps the VNIs apart: what one learned never shows up on the other', async () => {
    const vni1000 = await cli(['fdb', 'show', '--vni', '1000']);
    const vni2000 = await cli(['fdb', 'show', '--vni', '2000']);
    expect(vni1000.code, vni1000.stderr).toBe(0);
    expect(vni1000.stdout).toContain(containers[1][0].mac);
    expect(vni1000.stdout).not.toContain(containers[1][1].mac);
    expect(vni2000.stdout).toContain(containers[1][1].mac);
    expect(vni2000.stdout).not.toContain(containers[1][0].mac);
    // Open vSwitch on host 2 saw host 1's containers only on their own bridge.
    const br1 = await ovs(1).appctl(['fdb/show', 'ovs-br1']);
    expect(br1).toContain(containers[0][1].mac);
    expect(br1).not.toContain(containers[0][0].mac);
  });

  it('8 MiB over TCP arrive intact on each VNI, both ways (sha256 on both ends)', async () => {
    const t = lab().topology;
    for (const k of [0, 1]) {
      await expectTransfer(t, containers[0][k], containers[1][k], 4, 8 * 1024 * 1024);
      await expectTransfer(t, containers[1][k], containers[0][k], 4, 8 * 1024 * 1024);
    }
  });

  it('removing a network (reload) removes its port from the bridge; adding it back restores it', async () => {
    configFile(lab(), [1000]);
    const removed = await cli(['reload']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toContain('VNI 2000 removed');
    expect(await until(async () => !(await ports(0, 'ovs-br1')).includes('tsv2000')), 'tsv2000 is still a port of ovs-br1').toBe(true);
    expect(await ports(0, 'ovs-br0')).toContain('tsv1000');

    configFile(lab(), [1000, 2000]);
    const added = await cli(['reload']);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toContain('VNI 2000 added');
    expect(await ports(0, 'ovs-br1')).toContain('tsv2000');
    await expectPing(lab().topology, containers[0][1], containers[1][1]);
  });

  describe('failures are one line, exit 1, and leave no TAP', () => {
    /** tsvtep on host 1, next to the running one (other port and control socket), to completion. */
    async function run(env: Record<string, string>, args: string[]): Promise<{ code: number | null; stderr: string }> {
      const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
      const control = path.join(lab().dir, 'failure.sock');
      const child = lab().topology.spawn(h1().ns, ['env', ...envArgs, process.execPath, CLI_PATH, '--port', '4790', '--control', control, '--peer', lab().topology.hosts[1].underlayIp, ...args]);
      let stderr = '';
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (d: string) => (stderr += d));
      child.stdout?.resume();
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      clearTimeout(timer);
      return { code, stderr };
    }

    async function expectOneLine(result: { code: number | null; stderr: string }, message: RegExp, tap: string): Promise<void> {
      const lines = result.stderr.trimEnd().split('\n');
      expect(lines, result.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^tsvtep: /);
      expect(lines[0]).toMatch(message);
      expect(result.code, result.stderr).toBe(1);
      const link = await lab().topology.exec(h1().ns, ['ip', 'link', 'show', 'dev', tap]);
      expect(link.code, `${tap} was left behind`).not.toBe(0);
    }

    it('a port that OVS refuses (the name is taken on another bridge): the TAP goes, the other bridge keeps its port', async () => {
      await ovs(0).vsctl(['add-port', 'ovs-br1', 'tsv3000']);
      try {
        await expectOneLine(
          await run(ovs(0).env, ['--vni', '3000', '--bridge', 'ovs-br0']),
          /cannot attach tsv3000 to bridge ovs-br0: .*tsv3000 is actually attached to bridge ovs-br1/,
          'tsv3000',
        );
        expect(await ports(0, 'ovs-br1')).toContain('tsv3000');
        expect(await ports(0, 'ovs-br0')).not.toContain('tsv3000');
      } finally {
        await ovs(0).vsctl(['--if-exists', 'del-port', 'ovs-br1', 'tsv3000']);
      }
    });

    it('no Open vSwitch database where OVS_RUNDIR points', async () => {
      const nowhere = path.join(lab().dir, 'no-ovs-here');
      await expectOneLine(
        await run({ OVS_RUNDIR: nowhere }, ['--vni', '3001', '--bridge', 'ovs-br0']),
        new RegExp(`ovs-br0 is not a Linux bridge but a TAP, and no Open vSwitch database answers at ${nowhere}/db\\.sock`),
        'tsv3001',
      );
    });
  });

  it('SIGTERM removes its ports from the bridges and its TAPs', async () => {
    expect(await daemon?.stop()).toBe(0);
    expect(await ports(0, 'ovs-br0')).not.toContain('tsv1000');
    expect(await ports(0, 'ovs-br1')).not.toContain('tsv2000');
    const taps = await lab().topology.execOk(h1().ns, ['ip', '-o', 'link', 'show', 'type', 'tun']);
    expect(taps).not.toMatch(/tsv\d+/);
    // The rest of the bridges is as it was.
    expect(await ports(0, 'ovs-br0')).toEqual(expect.arrayContaining(['d1eth0', 'veth0']));
  });
});
