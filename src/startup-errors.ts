// Start-up failures as one line a person can act on (the CLI prints it and
// exits 1). What the edges throw becomes a StartupError here: an errno from
// the addon (by where it happened), or a LinkError, OvsError or DockerError,
// whose message already says what to do. Anything else is a bug and is
// returned unchanged, to surface as one.

import { DockerError } from './io/docker';
import { LinkError } from './io/link';
import { isErrnoError } from './io/native';
import { OvsError } from './io/ovs';

/** A failure to start that the user can act on; the message says how. */
export class StartupError extends Error {}

/** Runs one start-up step; the edges' own errors become StartupErrors. */
export async function startupStep<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    if (error instanceof LinkError || error instanceof OvsError || error instanceof DockerError) throw new StartupError(error.message);
    throw error;
  }
}

/** Loading the addon failed (not built, wrong platform): its message says which. */
export function addonError(error: unknown): StartupError {
  return new StartupError((error as Error).message);
}

/** Binding the VXLAN socket to address:port failed. */
export function bindError(error: unknown, address: string, port: number): unknown {
  if (!isErrnoError(error)) return error;
  switch (error.code) {
    case 'EADDRINUSE':
      return new StartupError(`UDP port ${port} is in use on ${address} (another tsvtep or a kernel vxlan device with dstport ${port}? pick another with --port)`);
    case 'EADDRNOTAVAIL':
      return new StartupError(`address ${address} is not on this host (ip addr lists local addresses)`);
    case 'EACCES':
      return new StartupError(`not allowed to bind UDP port ${port} (run as root)`);
    default:
      return error;
  }
}

/** Opening the sockets of --source-ports failed. */
export function sourcePortsError(error: unknown, port: number): StartupError {
  return new StartupError(`cannot open the sockets to send from: ${(error as Error).message} (--source-ports 1 sends from port ${port})`);
}

/** Creating TAP name failed. */
export function tapError(error: unknown, name: string): unknown {
  if (!isErrnoError(error)) return error;
  switch (error.code) {
    case 'EPERM':
    case 'EACCES':
      return new StartupError(`not allowed to create TAP ${name} (run as root or with CAP_NET_ADMIN)`);
    case 'ENOENT':
    case 'ENODEV':
      return new StartupError('/dev/net/tun is missing (modprobe tun, or give the container /dev/net/tun)');
    case 'EBUSY':
      return new StartupError(`TAP ${name} is in use by another process (pick another name with --tap)`);
    case 'EINVAL':
      return new StartupError(`${name} exists and is not a TAP (pick another name with --tap)`);
    default:
      return new StartupError(`cannot create TAP ${name}: ${error.message}`);
  }
}

/** Attaching TAP tap to bridge failed. */
export function attachError(error: unknown, tap: string, bridge: string): StartupError {
  return new StartupError(`cannot attach ${tap} to bridge ${bridge}: ${(error as Error).message}`);
}
