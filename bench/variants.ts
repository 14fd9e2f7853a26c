// The three labs the system benchmark compares, each a topology of the same
// shape: two hosts on a veth underlay, a bridge and a container on each, the
// containers at the overlay MTU. They differ only in what joins the bridges:
//   kernel  kernel vxlan devices, as the tutorials set them up;
//   tsvtep  one tsvtep daemon per host, as a user starts it;
//   wire    a plain veth between the two bridges, no tunnel: the ceiling.
// Every underlay keeps the offloads the kernel gives a new veth (transmit
// checksum and segmentation on), as a real NIC has them.

import { addKernelVxlan } from '../src/lab/kernel';
import { startDaemon, type DaemonProcess } from '../src/lab/process';
import { Topology } from '../src/lab/topology';
import { waitForPing } from '../src/lab/checks';

export const VNI = 100;
/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14). */
export const VXLAN_OVERHEAD = 50;

export const VARIANT_NAMES = ['kernel', 'tsvtep', 'wire'] as const;
export type VariantName = (typeof VARIANT_NAMES)[number];

/** What each lab has that the others do not, printed next to the figures. */
export const VARIANT_DIFFERENCES: Record<VariantName, string> = {
  kernel: 'kernel vxlan device per host (dstport 4789, head-end entry to the peer), on the bridge',
  tsvtep: 'tsvtep daemon per host (its TAP on the bridge), started with default options',
  wire: 'a veth between the two bridges: no encapsulation, no underlay hop',
};

export interface Variant {
  name: VariantName;
  topology: Topology;
  /** PIDs of the tsvtep daemons (host 1, host 2); empty for the others. */
  pids: number[];
  /** Why a daemon is no longer running, with the daemons' logs; undefined while all run. */
  failure(): string | undefined;
  /** Settles when the first daemon exits; never without daemons. */
  exited: Promise<void>;
}

export interface LabShape {
  underlayMtu: number;
  /** Extra command-line arguments for the tsvtep daemons. */
  tsvtepArgs?: string[];
}

async function createTopology(shape: LabShape): Promise<Topology> {
  return Topology.create({
    hosts: 2,
    vnis: [VNI],
    underlayMtu: shape.underlayMtu,
    // The overlay MTU the kernel's vxlan device takes by default, in every lab.
    containerMtu: shape.underlayMtu - VXLAN_OVERHEAD,
    ipv6: false,
  });
}

function peerOf(topology: Topology, index: number): string {
  return topology.hosts[1 - index].underlayIp;
}

const never = new Promise<void>(() => undefined);

function withoutDaemons(name: VariantName, topology: Topology): Variant {
  return { name, topology, pids: [], failure: () => undefined, exited: never };
}

/** Kernel vxlan on both hosts, as the tutorials set it up. */
export async function kernelVariant(shape: LabShape, created: Topology[]): Promise<Variant> {
  const topology = await createTopology(shape);
  created.push(topology);
  for (const host of topology.hosts) {
    await addKernelVxlan(topology, host, {
      vni: VNI,
      peers: [peerOf(topology, host.index)],
      mtu: shape.underlayMtu - VXLAN_OVERHEAD,
      // Kernel to kernel: the underlay keeps transmit checksum offload.
      userspacePeers: false,
    });
  }
  await expectReachable(topology, 'kernel vxlan');
  return withoutDaemons('kernel', topology);
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

/** The two bridges joined by one veth: what the containers get with no tunnel at all. */
export async function wireVariant(shape: LabShape, created: Topology[]): Promise<Variant> {
  const topology = await createTopology(shape);
  created.push(topology);
  const [h1, h2] = topology.hosts;
  // Deleted with the host namespaces when the topology is destroyed.
  await topology.execOk(h1.ns, ['ip', 'link', 'add', 'wire0', 'type', 'veth', 'peer', 'name', 'wire0', 'netns', h2.ns]);
  for (const host of [h1, h2]) {
    await topology.execOk(host.ns, ['ip', 'link', 'set', 'wire0', 'master', host.bridges.get(VNI) as string, 'up']);
  }
  await expectReachable(topology, 'wire');
  return withoutDaemons('wire', topology);
}

export const VARIANTS: Record<VariantName, (shape: LabShape, created: Topology[]) => Promise<Variant>> = {
  kernel: kernelVariant,
  tsvtep: tsvtepVariant,
  wire: wireVariant,
};

async function expectReachable(topology: Topology, what: string): Promise<void> {
  const [a, b] = [topology.container(0), topology.container(1)];
  if (!(await waitForPing(topology, a, b.ip)) || !(await waitForPing(topology, b, a.ip))) {
    throw new Error(`${what}: containers cannot ping each other; nothing to measure`);
  }
}
