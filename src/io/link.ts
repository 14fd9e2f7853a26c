// Link and bridge control through iproute2. This is the control path (start,
// stop, reload), never the data path, so plain `ip` commands serve: they work
// the same inside any network namespace and speak JSON.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

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

/** What kind of bridge name is; a LinkError saying what to do if it is none. */
export async function bridgeKind(name: string): Promise<BridgeKind> {
  const link = await getLink(name);
  if (!link) throw new LinkError(`bridge ${name} does not exist (ip link show type bridge lists bridges)`);
  const kind = link.linkinfo?.info_kind;
  if (kind === 'bridge') return 'linux';
  if (kind === 'openvswitch') return 'openvswitch';
  throw new LinkError(`${name} is not a bridge but a ${kind ?? 'plain'} link (ip link show type bridge lists bridges)`);
}

/** Sets the TAP's MTU, makes it a port of the bridge and brings it up. */
export async function attachToBridge(tap: string, bridge: string, mtu: number): Promise<void> {
  await ip(['link', 'set', 'dev', tap, 'mtu', String(mtu), 'master', bridge, 'up']);
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
