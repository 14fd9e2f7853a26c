// Subcommands that talk to a running daemon over its control interface:
//   tsvtep status | peers | peer add/del | fdb show/add/del | reload

import type { Command } from 'commander';
import { Option } from 'commander';
import { readTokenFile, TokenError, tokenFilePath } from '../control/token-file';
import { ControlClientError, controlRequest } from '../control/client';
import { defaultControlPath, parseControlEndpoint, type ControlEndpoint } from '../control/endpoint';
import { fdbText, peersText, statusText, type FdbView, type NetworkView, type NetworksReply, type PeerView } from '../control/views';
import { peerAddressProblem } from '../core/peer-address';
import { EXIT_FAILURE, EXIT_USAGE, UsageError, fail, numberOption } from './common';

interface ClientOptions {
  control?: string;
  controlTokenFile?: string;
  port?: number;
  vni?: number;
  json?: boolean;
}

function endpointOf(options: ClientOptions): ControlEndpoint {
  if (options.control !== undefined) {
    try {
      return parseControlEndpoint(options.control);
    } catch (error) {
      throw new UsageError(`--control: ${(error as Error).message}`);
    }
  }
  return { kind: 'unix', path: defaultControlPath(options.port ?? 4789) };
}

function withClientOptions(command: Command, vni: 'filter' | 'required' | 'none'): Command {
  command
    .option('--control <path|addr:port>', "the daemon's control interface (default: the one of this namespace)")
    .option('--control-token-file <file>', 'the bearer token of a TCP control port (default: the one the daemon wrote in /run/tsvtep/)')
    .addOption(new Option('--port <n>', 'VXLAN port of the daemon, to find its default control socket').argParser(numberOption('--port')))
    .option('--json', 'print the raw JSON');
  if (vni === 'filter') command.addOption(new Option('--vni <n>', 'only this VNI').argParser(numberOption('--vni')));
  if (vni === 'required') command.addOption(new Option('--vni <n>', 'the VNI').argParser(numberOption('--vni')).makeOptionMandatory());
  return command;
}

/** The token of a TCP endpoint, if this user can read it; without one the daemon answers 401. */
function tokenOf(endpoint: ControlEndpoint, options: ClientOptions): string | undefined {
  if (endpoint.kind !== 'tcp') return undefined;
  try {
    return readTokenFile(options.controlTokenFile ?? tokenFilePath(endpoint));
  } catch (error) {
    if (error instanceof TokenError && options.controlTokenFile !== undefined) fail(EXIT_FAILURE, error.message);
    return undefined;
  }
}

/**
 * Sends a request; a failure is one line and exit 1, or exit 2 where a 400
 * answer means the command was given bad input (usageOn400: a peer address,
 * a config file that does not validate on reload).
 */
async function request(options: ClientOptions, method: string, path: string, body?: unknown, usageOn400 = false): Promise<unknown> {
  const endpoint = endpointOf(options);
  try {
    return await controlRequest(endpoint, method, path, body, tokenOf(endpoint, options));
  } catch (error) {
    if (error instanceof ControlClientError && error.status === 401) {
      fail(EXIT_FAILURE, `${error.message.replace(/ \(.*$/, '')}: run as root, or give --control-token-file FILE`);
    }
    if (error instanceof ControlClientError) {
      const lines = error.message.split('\n');
      const message = lines.length > 1 ? `${lines[0]} (and ${lines.length - 1} more problem(s))` : lines[0];
      fail(usageOn400 && error.status === 400 ? EXIT_USAGE : EXIT_FAILURE, message);
    }
    throw error;
  }
}

function print(options: ClientOptions, value: unknown, text: () => string): void {
  process.stdout.write(options.json ? `${JSON.stringify(value, null, 2)}\n` : text());
}

function vniQuery(options: ClientOptions): string {
  return options.vni === undefined ? '' : `?vni=${options.vni}`;
}

export function registerControlCommands(program: Command): void {
  withClientOptions(program.command('status').description('networks served by the running daemon, with MTUs and counters'), 'none').action(
    async (options: ClientOptions) => {
      const result = (await request(options, 'GET', '/networks')) as NetworksReply;
      print(options, result, () => statusText(result));
    },
  );

  withClientOptions(program.command('peers').description('peers, and remotes learned with --learn-remotes, with their VNIs and traffic counters (all VNIs together)'), 'filter').action(
    async (options: ClientOptions) => {
      const result = (await request(options, 'GET', `/peers${vniQuery(options)}`)) as { peers: PeerView[] };
      print(options, result, () => peersText(result.peers));
    },
  );

  const peer = program.command('peer').description('add or remove a peer of a running daemon');
  withClientOptions(peer.command('add <address>').description('add a peer to a VNI'), 'required').action(
    async (address: string, options: ClientOptions) => {
      const problem = peerAddressProblem(address);
      if (problem !== undefined) throw new UsageError(`peer ${address} ${problem}`);
      const result = (await request(options, 'POST', '/peers', { vni: options.vni, address }, true)) as { added: boolean };
      print(options, result, () => (result.added ? `peer ${address} added to VNI ${options.vni}\n` : `${address} is already a peer of VNI ${options.vni}\n`));
    },
  );
  withClientOptions(peer.command('del <address>').description('remove a peer from a VNI'), 'required').action(
    async (address: string, options: ClientOptions) => {
      const query = `?vni=${options.vni}&address=${encodeURIComponent(address)}`;
      const result = (await request(options, 'DELETE', `/peers${query}`)) as { removed: boolean };
      if (!result.removed) fail(EXIT_FAILURE, `${address} is not a peer of VNI ${options.vni}`);
      print(options, result, () => `peer ${address} removed from VNI ${options.vni}\n`);
    },
  );

  const fdb = program.command('fdb').description('show or change the forwarding database');
  withClientOptions(fdb.command('show').description('MAC entries, like `bridge fdb show`'), 'filter').action(async (options: ClientOptions) => {
    const [entries, networks] = await Promise.all([
      request(options, 'GET', `/fdb${vniQuery(options)}`) as Promise<{ entries: FdbView[] }>,
      request(options, 'GET', '/networks') as Promise<{ networks: NetworkView[] }>,
    ]);
    print(options, entries, () => fdbText(entries.entries, networks.networks, options.vni));
  });
  withClientOptions(fdb.command('add <mac>').description('add a static entry: MAC behind a peer'), 'required')
    .requiredOption('--dst <address>', 'the peer the MAC lives behind')
    .action(async (mac: string, options: ClientOptions & { dst: string }) => {
      const result = await request(options, 'POST', '/fdb', { vni: options.vni, mac, remote: options.dst });
      print(options, result, () => `${mac} dst ${options.dst} vni ${options.vni} static\n`);
    });
  withClientOptions(fdb.command('del <mac>').description('remove an entry'), 'required').action(async (mac: string, options: ClientOptions) => {
    const result = (await request(options, 'DELETE', `/fdb?vni=${options.vni}&mac=${encodeURIComponent(mac)}`)) as { removed: boolean };
    if (!result.removed) fail(EXIT_FAILURE, `no entry for ${mac} on VNI ${options.vni}`);
    print(options, result, () => `${mac} removed from VNI ${options.vni}\n`);
  });

  withClientOptions(program.command('reload').description('re-read the config file (as SIGHUP does)'), 'none').action(
    async (options: ClientOptions) => {
      const result = (await request(options, 'POST', '/reload', undefined, true)) as { changes: string[] };
      print(options, result, () => (result.changes.length ? result.changes.map((c) => `${c}\n`).join('') : 'no changes\n'));
    },
  );
}
