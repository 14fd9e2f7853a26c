// Link and bridge control through iproute2. This is the control path (start,
// stop, reload), never the data path, so plain `ip` commands serve: they work
// the same inside any network namespace and speak JSON.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { addOvsPort, ovsBridgeExists, ovsDatabaseSocket, removeOvsPort, removeOvsPortSync } from './ovs';

const run = promisify(execFile);

export class LinkError extends Error {}

async function ip(args: string[]): Promise<string> {
  try {
    const { stdout } = await run('ip', args, { timeout: 10_000 });
    return stdout;
  } catch (error) {
    const err = error as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') throw new LinkError('the ip command is missing (install iproute2)');
    const detail = (err.stderr ?? err.message).trim().split('\n')[0];
    throw new LinkError(`ip ${args.join(' ')}: ${detail}`);
  }
}

interface IpLink {
  ifname: string;
  mtu: number;
  operstate?: string;
  /** UP (administratively), LOWER_UP (carrier), BROADCAST, ... */
  flags?: string[];
  linkinfo?: { info_kind?: string };
  master?: string;
}

/** The link called name, or undefined if there is none. */
export async function getLink(name: string): Promise<IpLink | undefined> {
  try {
    const links = JSON.parse(await ip(['-j', '-d', 'link', 'show', 'dev', name])) as IpLink[];
    return links[0];
  } catch (error) {
    if (error instanceof LinkError && /does not exist|Cannot find device/.test(error.message)) return undefined;
    throw error;
  }
}

export type BridgeKind = 'linux' | 'openvswitch';

/**
 * What kind of bridge name is; a LinkError saying what to do if it is none.
 * An Open vSwitch bridge shows up as an `openvswitch` link with the kernel
 * datapath and as a TAP (`tun`) with the userspace one (datapath_type=netdev);
 * either way OVS itself is asked, since its internal ports look the same.
 */
export async function bridgeKind(name: string): Promise<BridgeKind> {
  const link = await getLink(name);
  if (!link) throw new LinkError(`bridge ${name} does not exist (ip link show type bridge lists bridges)`);
  const kind = link.linkinfo?.info_kind;
  if (kind === 'bridge') return 'linux';
  if (kind === 'openvswitch' || kind === 'tun') {
    const isOvsBridge = await ovsBridgeExists(name);
    if (isOvsBridge) return 'openvswitch';
    if (kind === 'openvswitch') {
      throw new LinkError(
        isOvsBridge === false
          ? `${name} is an Open vSwitch port, not a bridge (ovs-vsctl list-br lists bridges)`
          : `${name} belongs to Open vSwitch, but its database does not answer at ${ovsDatabaseSocket()} (is ovsdb-server running? OVS_RUNDIR selects its run directory)`,
      );
    }
    if (isOvsBridge === undefined) {
      throw new LinkError(
        `${name} is not a Linux bridge but a TAP, and no Open vSwitch database answers at ${ovsDatabaseSocket()} to say it is one of its bridges (OVS_RUNDIR selects its run directory)`,
      );
    }
  }
  throw new LinkError(`${name} is not a bridge but a ${kind ?? 'plain'} link (ip link show type bridge lists bridges)`);
}

/**
 * Sets the TAP's MTU, makes it a port of the bridge and brings it up. On an
 * Open vSwitch bridge the port is added with ovs-vsctl (which an OvsError
 * reports if it fails).
 */
export async function attachToBridge(tap: string, bridge: string, mtu: number, kind: BridgeKind = 'linux'): Promise<void> {
  if (kind === 'openvswitch') {
    await ip(['link', 'set', 'dev', tap, 'mtu', String(mtu), 'up']);
    await addOvsPort(bridge, tap);
    return;
  }
  await ip(['link', 'set', 'dev', tap, 'mtu', String(mtu), 'master', bridge, 'up']);
}

/**
 * Takes the TAP off its bridge. A Linux bridge lets go of a deleted link by
 * itself; Open vSwitch keeps the port in its database until it is removed.
 */
export async function detachFromBridge(tap: string, bridge: string, kind: BridgeKind): Promise<void> {
  if (kind === 'openvswitch') await removeOvsPort(bridge, tap);
}

/** The same, blocking, for the shutdown path. */
export function detachFromBridgeSync(tap: string, bridge: string, kind: BridgeKind): void {
  if (kind === 'openvswitch') removeOvsPortSync(bridge, tap);
}

/** Removes a link if it exists (used when the TAP must go before the process does). */
export async function deleteLink(name: string): Promise<void> {
  if (await getLink(name)) await ip(['link', 'del', 'dev', name]);
}

interface IpRoute {
  dev?: string;
  prefsrc?: string;
  metrics?: { mtu?: number }[];
}

/** The device and source address the kernel would use to reach address. */
export async function routeTo(address: string): Promise<{ dev: string; source?: string; mtu: number }> {
  const routes = JSON.parse(await ip(['-j', 'route', 'get', address])) as IpRoute[];
  const route = routes[0];
  if (!route?.dev) throw new LinkError(`no route to ${address} (ip route shows the routing table)`);
  const link = await getLink(route.dev);
  const routeMtu = route.metrics?.find((m) => m.mtu !== undefined)?.mtu;
  return { dev: route.dev, source: route.prefsrc, mtu: routeMtu ?? link?.mtu ?? 1500 };
}

interface IpAddrInfo {
  addr_info?: { family: string; local: string; scope: string }[];
}

/** The first global address of dev, IPv4 preferred. */
export async function deviceAddress(dev: string): Promise<string> {
  if (!(await getLink(dev))) throw new LinkError(`device ${dev} does not exist (ip link lists devices)`);
  const info = JSON.parse(await ip(['-j', 'addr', 'show', 'dev', dev])) as IpAddrInfo[];
  const addresses = (info[0]?.addr_info ?? []).filter((a) => a.scope === 'global');
  const chosen = addresses.find((a) => a.family === 'inet') ?? addresses.find((a) => a.family === 'inet6');
  if (!chosen) throw new LinkError(`device ${dev} has no global address (ip addr show dev ${dev})`);
  return chosen.local;
}

/** MTUs of the links attached to a bridge (its ports). */
export async function bridgePortMtus(bridge: string): Promise<number[]> {
  const links = JSON.parse(await ip(['-j', 'link', 'show', 'master', bridge])) as IpLink[];
  return links.map((link) => link.mtu).filter((mtu) => Number.isInteger(mtu));
}
