// The kernel's own vxlan driver as a peer, set up the way the tutorials do:
// `ip link add vxN type vxlan id N dstport 4789 dev eth0`, one all-zeros FDB
// entry per remote (head-end replication), attached to the bridge.

import type { Host, Topology } from './topology';

export interface KernelVxlanOptions {
  vni: number;
  /** Underlay addresses of the remote VTEPs. */
  peers: string[];
  port?: number;
  /** MTU of the vxlan device; the kernel's default is the underlay's minus 50. */
  mtu?: number;
  /**
   * Whether a peer is a userspace VTEP (tsvtep, OVS's userspace datapath);
   * default true. Kernel peers need nothing: see below.
   */
  userspacePeers?: boolean;
}

/** Adds a kernel vxlan device on host, attached to the VNI's bridge. Returns its name. */
export async function addKernelVxlan(topology: Topology, host: Host, options: KernelVxlanOptions): Promise<string> {
  const device = `vx${options.vni}`;
  const bridge = host.bridges.get(options.vni);
  if (!bridge) throw new Error(`host ${host.ns} has no bridge for VNI ${options.vni}`);
  const port = String(options.port ?? 4789);
  const ipv6 = options.peers.some((p) => p.includes(':'));
  const local = ipv6 ? host.underlayIp6 : host.underlayIp;
  const add = ['ip', 'link', 'add', device, 'type', 'vxlan', 'id', String(options.vni), 'dstport', port, 'local', local, 'dev', host.underlayIf];
  await topology.execOk(host.ns, add);
  for (const peer of options.peers) {
    await topology.execOk(host.ns, ['bridge', 'fdb', 'append', '00:00:00:00:00:00', 'dst', peer, 'dev', device]);
  }
  if (options.mtu !== undefined) await topology.execOk(host.ns, ['ip', 'link', 'set', device, 'mtu', String(options.mtu)]);
  await topology.execOk(host.ns, ['ip', 'link', 'set', device, 'master', bridge, 'up']);
  // On a veth underlay the kernel leaves the inner TCP/UDP checksum of the
  // packets it encapsulates to the "NIC", and veth never fills it in; a real
  // NIC would. A kernel peer does not mind (the packet crosses veth still
  // marked "checksum partial"), but a userspace peer reads the datagram and
  // sees a wrong checksum. Only then the kernel must compute it (tx off).
  if (options.userspacePeers ?? true) await topology.execOk(host.ns, ['ethtool', '-K', host.underlayIf, 'tx', 'off']);
  return device;
}
