// FRR (Debian package frr) as the reference kernel VTEP inside a topology
// host: a kernel vxlan device with nolearning on the host's bridge, and zebra
// + bgpd with a pathspace of their own (-N), so vtysh -N NAME reaches them and
// nothing of the machine's own FRR is touched. Both run in the foreground,
// started through the topology (stopped by PID); stop() removes their
// directories.

import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { stopProcess, type Topology } from '../../src/lab/topology';
import { FABRIC_ASN, sleep } from './gobgp';

export interface FrrHost {
  name: string;
  vtysh(command: string): Promise<string>;
  /** `bridge fdb show dev vxlanVNI` in the host. */
  kernelFdb(): Promise<string>;
  log(): string;
  waitEstablished(neighbours: string[], deadlineMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** The FRR configuration a kernel VTEP peering with tsvtep's gobgpd needs. */
export function frrConfig(hostname: string, routerId: string, neighbours: string[]): string {
  return [
    'frr defaults datacenter',
    `hostname ${hostname}`,
    '!',
    `router bgp ${FABRIC_ASN}`,
    ` bgp router-id ${routerId}`,
    ' no bgp default ipv4-unicast',
    ...neighbours.flatMap((n) => [` neighbor ${n} remote-as ${FABRIC_ASN}`, ` neighbor ${n} timers 3 9`, ` neighbor ${n} timers connect 2`]),
    ' !',
    ' address-family l2vpn evpn',
    ...neighbours.map((n) => `  neighbor ${n} activate`),
    '  advertise-all-vni',
    ' exit-address-family',
    '!',
    '',
  ].join('\n');
}

/** The kernel side: vxlanVNI, nolearning, on the bridge, as FRR's EVPN expects. */
export async function addKernelVxlan(topology: Topology, ns: string, vni: number, local: string, bridge: string): Promise<void> {
  const device = `vxlan${vni}`;
  await topology.execOk(ns, ['ip', 'link', 'add', device, 'type', 'vxlan', 'id', String(vni), 'local', local, 'dstport', '4789', 'nolearning']);
  await topology.execOk(ns, ['ip', 'link', 'set', device, 'master', bridge, 'up']);
  await topology.execOk(ns, ['bridge', 'link', 'set', 'dev', device, 'learning', 'off']);
  // On a veth underlay the kernel leaves inner checksums for a NIC to fill in, and veth never
  // does; a userspace peer would see them wrong (see src/lab/kernel.ts).
  await topology.execOk(ns, ['ethtool', '-K', 'eth0', 'tx', 'off']);
}

export async function startFrr(topology: Topology, ns: string, routerId: string, neighbours: string[], vni: number): Promise<FrrHost> {
  const name = `${topology.prefix}-${path.basename(ns)}`.slice(0, 40);
  const dir = mkdtempSync(path.join(tmpdir(), 'tsvtep-frr-'));
  const runDir = `/var/run/frr/${name}`;
  const frrIds = { uid: Number(execFileSync('id', ['-u', 'frr']).toString()), gid: Number(execFileSync('id', ['-g', 'frr']).toString()) };
  mkdirSync(runDir, { recursive: true });
  chownSync(runDir, frrIds.uid, frrIds.gid);
  chownSync(dir, frrIds.uid, frrIds.gid);
  const config = path.join(dir, 'frr.conf');
  writeFileSync(config, frrConfig(name, routerId, neighbours));
  chownSync(config, frrIds.uid, frrIds.gid);
  let log = '';
  const children: ChildProcess[] = [];
  const vtysh = (command: string) => topology.execOk(ns, ['vtysh', '-N', name, '-c', command], 10_000);
  const start = async (daemon: 'zebra' | 'bgpd'): Promise<void> => {
    const child = topology.spawn(ns, [`/usr/lib/frr/${daemon}`, '-N', name, '-f', config, '-i', path.join(dir, `${daemon}.pid`), '-u', 'frr', '-g', 'frr', '-P', '0', '--log', 'stdout']);
    children.push(child);
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (d: string) => (log += d));
    child.stderr?.on('data', (d: string) => (log += d));
    const end = Date.now() + 15_000;
    for (;;) {
      const answer = await topology.exec(ns, ['vtysh', '-N', name, '-d', daemon, '-c', 'show version'], 5_000);
      if (answer.code === 0) return;
      if (child.exitCode !== null || Date.now() > end) throw new Error(`${daemon} in ${ns} did not start: ${answer.stderr} ${log.slice(-2000)}`);
      await sleep(200);
    }
  };
  const host: FrrHost = {
    name,
    vtysh,
    kernelFdb: () => topology.execOk(ns, ['bridge', 'fdb', 'show', 'dev', `vxlan${vni}`]),
    log: () => log,
    async waitEstablished(peers: string[], deadlineMs = 30_000) {
      const end = Date.now() + deadlineMs;
      for (;;) {
        const summary = await vtysh('show bgp l2vpn evpn summary json').catch(() => '{}');
        const parsed = JSON.parse(summary) as { peers?: Record<string, { state?: string }> };
        if (peers.every((p) => parsed.peers?.[p]?.state === 'Established')) return;
        if (Date.now() > end) throw new Error(`FRR in ${ns}: sessions not established:\n${summary}`);
        await sleep(250);
      }
    },
    async stop() {
      for (const child of children.reverse()) await stopProcess(child, 3_000);
      rmSync(dir, { recursive: true, force: true });
      rmSync(runDir, { recursive: true, force: true });
    },
  };
  try {
    await start('zebra');
    await start('bgpd');
  } catch (error) {
    await host.stop();
    throw error;
  }
  return host;
}
