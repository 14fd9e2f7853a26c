// Where the control interface listens. By default a Unix socket per network
// namespace and UDP port, so the CLI run next to a daemon finds it, and
// daemons in other namespaces (one per "host" in a lab) never collide.

import { statSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';

export const CONTROL_DIR = '/run/tsvtep';

export type ControlEndpoint = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/**
 * /run/tsvtep/net<inode of this network namespace>-<port>.sock. From outside
 * a namespace, pass its file: /run/netns/NAME has the inode that
 * /proc/self/ns/net has inside it.
 */
export function defaultControlPath(vxlanPort: number, namespaceFile = '/proc/self/ns/net'): string {
  let namespace = 'host';
  try {
    namespace = `net${statSync(namespaceFile).ino}`;
  } catch {
    // No /proc: one daemon per port is still distinct.
  }
  return path.join(CONTROL_DIR, `${namespace}-${vxlanPort}.sock`);
}

/**
 * Parses --control: a path (Unix socket), or HOST:PORT / [V6]:PORT on a
 * loopback address. Anything reachable from other hosts is refused.
 */
export function parseControlEndpoint(text: string): ControlEndpoint {
  if (text.startsWith('/') || text.startsWith('.')) return { kind: 'unix', path: path.resolve(text) };
  const match = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (!match) throw new Error(`${text} is neither a socket path nor HOST:PORT`);
  const [, host, portText] = match;
  const port = Number(portText);
  if (isIP(host) === 0) throw new Error(`${host} is not an IP address`);
  if (!(host === '::1' || host.startsWith('127.'))) {
    throw new Error(`${host} is not a loopback address; the control interface must not be reachable from other hosts`);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new Error(`${portText} is not a port number`);
  return { kind: 'tcp', host, port };
}

export function describeEndpoint(endpoint: ControlEndpoint): string {
  if (endpoint.kind === 'unix') return endpoint.path;
  return endpoint.host.includes(':') ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`;
}
