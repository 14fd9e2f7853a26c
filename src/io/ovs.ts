// Open vSwitch control through ovs-vsctl: is a name an OVS bridge, and adding
// and removing the TAP as one of its ports. Like link.ts this is the control
// path only. ovs-vsctl finds the database the way every OVS tool does:
// unix:$OVS_RUNDIR/db.sock (default /var/run/openvswitch/db.sock), so a
// private OVS started with its own OVS_RUNDIR is reached by running tsvtep
// with the same environment.
//
// Every call goes through one queue, in the order it was made: a port removed
// (asynchronously) just before the same port is added again (a network
// restarted on reload) is removed first.

import { execFile, execFileSync } from 'node:child_process';

export class OvsError extends Error {}

/** ovs-vsctl's own limit (it gives up and says so); we stop waiting 5 s later. */
const OVS_TIMEOUT_S = 10;
/** For questions and removals, which do not wait for ovs-vswitchd (--no-wait). */
const REMOVE_TIMEOUT_S = 5;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

let queue: Promise<unknown> = Promise.resolve();

function vsctl(args: string[], timeoutS = OVS_TIMEOUT_S): Promise<Result> {
  const call = queue.then(
    () =>
      new Promise<Result>((resolve, reject) => {
        execFile('ovs-vsctl', [`--timeout=${timeoutS}`, ...args], { timeout: (timeoutS + 5) * 1000 }, (error, stdout, stderr) => {
          if (!error) return resolve({ code: 0, stdout, stderr });
          const err = error as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
          if (err.code === 'ENOENT') return reject(new OvsError('the ovs-vsctl command is missing (install openvswitch-switch)'));
          if (err.killed) return reject(new OvsError(`ovs-vsctl ${args.join(' ')} did not finish in ${timeoutS + 5} s`));
          resolve({ code: typeof err.code === 'number' ? err.code : 1, stdout, stderr });
        });
      }),
  );
  queue = call.catch(() => undefined);
  return call;
}

/** The database socket ovs-vsctl uses (for messages): unix:$OVS_RUNDIR/db.sock. */
export function ovsDatabaseSocket(): string {
  return `${process.env.OVS_RUNDIR || '/var/run/openvswitch'}/db.sock`;
}

function failure(what: string, result: Result): OvsError {
  const detail = result.stderr.trim().split('\n')[0].replace(/^ovs-vsctl: /, '');
  if (/database connection failed|Connection refused|No such file or directory/.test(detail)) {
    return new OvsError(
      `${what}: the Open vSwitch database is not reachable at ${ovsDatabaseSocket()} (is ovsdb-server running? OVS_RUNDIR selects its run directory)`,
    );
  }
  return new OvsError(`${what}: ${detail || `ovs-vsctl exited ${result.code}`}`);
}

/**
 * Whether name is an Open vSwitch bridge: true or false as OVS says (false if
 * OVS is not installed), or undefined if its database cannot be reached.
 */
export async function ovsBridgeExists(name: string): Promise<boolean | undefined> {
  let result: Result;
  try {
    result = await vsctl(['br-exists', name], REMOVE_TIMEOUT_S);
  } catch (error) {
    return /missing/.test((error as Error).message) ? false : undefined;
  }
  if (result.code === 0) return true;
  if (result.code === 2) return false;
  return undefined;
}

/**
 * Whether the bridge uses the userspace datapath (datapath_type=netdev). That
 * datapath reads and writes its ports through plain AF_PACKET sockets: a TCP
 * segment of 64 KiB or a frame with its checksum left to "hardware", which a
 * TAP with offloads may carry, arrives there truncated or unfinished.
 */
export async function ovsUserspaceDatapath(bridge: string): Promise<boolean> {
  const result = await vsctl(['get', 'bridge', bridge, 'datapath_type'], REMOVE_TIMEOUT_S);
  if (result.code !== 0) throw failure(`ovs-vsctl get bridge ${bridge} datapath_type`, result);
  return result.stdout.trim().replace(/"/g, '') === 'netdev';
}

/** MTUs of the bridge's ports as OVS reports them (the bridge's own is left out). */
export async function ovsPortMtus(bridge: string): Promise<number[]> {
  const ifaces = await vsctl(['list-ifaces', bridge], REMOVE_TIMEOUT_S);
  if (ifaces.code !== 0) throw failure(`ovs-vsctl list-ifaces ${bridge}`, ifaces);
  const names = ifaces.stdout.split('\n').filter((name) => name !== '');
  if (names.length === 0) return [];
  const mtus = await vsctl(['--bare', '--columns=mtu', 'list', 'Interface', ...names], REMOVE_TIMEOUT_S);
  if (mtus.code !== 0) return []; // a port went away in between: the bridge's own MTU serves
  return mtus.stdout
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((mtu) => Number.isInteger(mtu) && mtu > 0);
}

/**
 * Adds port (an existing, up link such as our TAP) to an OVS bridge; a port
 * of that name already on that bridge (left by a killed tsvtep) is kept. If
 * adding fails, nothing is left in the database.
 */
export async function addOvsPort(bridge: string, port: string): Promise<void> {
  const result = await vsctl(['--may-exist', 'add-port', bridge, port]);
  if (result.code === 0) return;
  // ovs-vsctl may give up waiting for ovs-vswitchd after the port was
  // committed; take it out again. This removes nothing from other bridges.
  await vsctl(['--no-wait', '--if-exists', 'del-port', bridge, port], REMOVE_TIMEOUT_S).catch(() => undefined);
  throw failure(`ovs-vsctl add-port ${bridge} ${port}`, result);
}

/** Removes port from the bridge if it is there. */
export async function removeOvsPort(bridge: string, port: string): Promise<void> {
  const result = await vsctl(['--no-wait', '--if-exists', 'del-port', bridge, port], REMOVE_TIMEOUT_S);
  if (result.code !== 0) throw failure(`ovs-vsctl del-port ${bridge} ${port}`, result);
}

/**
 * The same, blocking: for the shutdown path, which exits right after. Any
 * queued asynchronous call is abandoned with the process.
 */
export function removeOvsPortSync(bridge: string, port: string): void {
  try {
    execFileSync('ovs-vsctl', [`--timeout=${REMOVE_TIMEOUT_S}`, '--no-wait', '--if-exists', 'del-port', bridge, port], {
      timeout: (REMOVE_TIMEOUT_S + 2) * 1000,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  } catch (error) {
    const err = error as NodeJS.ErrnoException & { status?: number | null; stderr?: Buffer };
    if (err.code === 'ENOENT') throw new OvsError('the ovs-vsctl command is missing (install openvswitch-switch)');
    throw failure(`ovs-vsctl del-port ${bridge} ${port}`, { code: err.status ?? 1, stdout: '', stderr: err.stderr?.toString() ?? err.message });
  }
}
