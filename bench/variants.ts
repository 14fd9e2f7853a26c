// The two things the system benchmark compares, each in its own topology of
// the same shape: two hosts on a veth underlay, a bridge and a container on
// each, joined by kernel vxlan devices or by a tsvtep daemon per host.

import { addKernelVxlan } from '../src/lab/kernel';
import { startDaemon, type DaemonProcess } from '../src/lab/process';
import { Topology } from '../src/lab/topology';
import { waitForPing } from '../src/lab/checks';

export const VNI = 100;
/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14). */
export const VXLAN_OVERHEAD = 50;

export type VariantName = 'kernel' | 'tsvtep';

export interface Variant {
  name: VariantName;
  topology: Topology;
  /** PIDs of the tsvtep daemons (host 1, host 2); empty for the kernel. */
  pids: number[];
  /** Why a daemon is no longer running, with the daemons' logs; undefined while all run. */
  failure(): string | undefined;
  /** Settles when the first daemon exits; never for the kernel. */
  exited: Promise<void>;
}

export interface LabShape {
  underlayMtu: number;
  /** Extra command-line arguments for the tsvtep daemons. */
  tsvtepArgs?: string[];
}

async function createTopology(shape: LabShape): Promise<Topology> {
  const topology = await Topology.create({
    hosts: 2,
    vnis: [VNI],
    underlayMtu: shape.underlayMtu,
    // The overlay MTU the kernel's vxlan device takes by default, on both variants.
    containerMtu: shape.underlayMtu - VXLAN_OVERHEAD,
    ipv6: false,
  });
  // addKernelVxlan turns transmit checksum offload off on the underlay (veth
  // never fills in the inner checksums the kernel leaves to the NIC). Do the
  // same everywhere, so both variants run over identical underlays.
  for (const host of topology.hosts) await topology.execOk(host.ns, ['ethtool', '-K', host.underlayIf, 'tx', 'off']);
  return topology;
}

function peerOf(topology: Topology, index: number): string {
  return topology.hosts[1 - index].underlayIp;
}

/** Kernel vxlan on both hosts, as the tutorials set it up. */
export async function kernelVariant(shape: LabShape, created: Topology[]): Promise<Variant> {
  const topology = await createTopology(shape);
  created.push(topology);
  for (const host of topology.hosts) {
    await addKernelVxlan(topology, host, { vni: VNI, peers: [peerOf(topology, host.index)], mtu: shape.underlayMtu - VXLAN_OVERHEAD });
  }
  await expectReachable(topology, 'kernel vxlan');
  return { name: 'kernel', topology, pids: [], failure: () => undefined, exited: new Promise(() => undefined) };
}

/** A tsvtep daemon on both hosts, started the way a user starts it. */
export async function tsvtepVariant(shape: LabShape, created: Topology[]): Promise<Variant> {
  const topology = await createTopology(shape);
  created.push(topology);
  const daemons: DaemonProcess[] = [];
  for (const host of topology.hosts) {
    const bridge = host.bridges.get(VNI) as string;
    const args = ['--vni', String(VNI), '--peer', peerOf(topology, host.index), '--bridge', bridge, ...(shape.tsvtepArgs ?? [])];
    daemons.push(await startDaemon(topology, host.ns, args));
  }
  const pids = daemons.map((d) => d.child.pid as number);
  await expectReachable(topology, 'tsvtep');
  const failure = (): string | undefined => {
    const gone = daemons.filter((d) => d.child.exitCode !== null || d.child.signalCode !== null);
    if (gone.length === 0) return undefined;
    const how = gone.map((d) => `tsvtep ${d.child.pid} exited (${d.child.exitCode ?? d.child.signalCode})`).join('; ');
    return `${how} during the benchmark; logs:\n${daemons.map((d, i) => `--- host ${i + 1}:\n${d.log().trim()}`).join('\n')}`;
  };
  const exited = Promise.race(daemons.map((d) => new Promise<void>((resolve) => d.child.once('exit', () => resolve()))));
  return { name: 'tsvtep', topology, pids, failure, exited };
}

async function expectReachable(topology: Topology, what: string): Promise<void> {
  const [a, b] = [topology.container(0), topology.container(1)];
  if (!(await waitForPing(topology, a, b.ip)) || !(await waitForPing(topology, b, a.ip))) {
    throw new Error(`${what}: containers cannot ping each other; nothing to measure`);
  }
}
