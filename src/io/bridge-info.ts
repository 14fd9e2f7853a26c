// What the daemon must know about a network's bridge before attaching a TAP:
// its name (configured, or asked of the Docker Engine), its kind, the MTU the
// TAP needs and whether it takes offloaded frames. Failures are LinkError,
// OvsError or DockerError, with a message a person can act on.

import { dockerNetworkBridge } from './docker';
import { bridgeKind, bridgePortMtus, getLink, type BridgeKind } from './link';
import { ovsPortMtus, ovsUserspaceDatapath } from './ovs';

export interface BridgeInfo {
  kind: BridgeKind;
  /** The bridge's MTU, or its largest port's if bigger: no frame a port sends is too big for the TAP. */
  tapMtu: number;
  /** False for Open vSwitch's userspace datapath, which drops frames a TAP with offloads hands it. */
  offload: boolean;
}

/** The network's bridge: as configured, or the one behind its Docker network. */
export async function bridgeName(network: { bridge?: string; dockerNetwork?: string }): Promise<string> {
  if (network.bridge !== undefined) return network.bridge;
  return dockerNetworkBridge(network.dockerNetwork as string);
}

/**
 * Checks that name is a bridge we can attach to. The TAP takes the largest
 * port MTU, not the bridge's own (which follows its smallest port).
 */
export async function inspectBridge(name: string): Promise<BridgeInfo> {
  const kind = await bridgeKind(name);
  const link = await getLink(name);
  const portMtus = kind === 'openvswitch' ? await ovsPortMtus(name) : await bridgePortMtus(name);
  const offload = kind !== 'openvswitch' || !(await ovsUserspaceDatapath(name));
  return { kind, tapMtu: Math.max(link?.mtu ?? 1500, ...portMtus), offload };
}
