// Subcommands that talk to a running daemon over its control interface:
//   tsvtep status | peers | peer add/del | fdb show/add/del | reload

import type { Command } from 'commander';
import { Option } from 'commander';
import { ControlClientError, controlRequest } from '../control/client';
import { defaultControlPath, parseControlEndpoint, type ControlEndpoint } from '../control/endpoint';
import { EXIT_FAILURE, UsageError, fail, numberOption } from './common';

interface ClientOptions {
  control?: string;
  port?: number;
  vni?: number;
  json?: boolean;
}

interface NetworkView {
  vni: number;
  bridge: string;
  tap: string;
  tapMtu: number;
  overlayMtu: number;
  peers: string[];
  fdbEntries: number;
  fdbLimit: number;
  ageingSeconds: number;
  counters: { rxFrames: number; txFrames: number; floodedFrames: number; drops: Record<string, number> };
}

interface FdbView {
  vni: number;
  mac: string;
  remote: string;
  isStatic: boolean;
  ageSeconds: number;
}

interface PeerView {
  vnis: number[];
  address: string;
  rxDatagrams: number;
  rxBytes: number;
  txDatagrams: number;
  txBytes: number;
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
    .addOption(new Option('--port <n>', 'VXLAN port of the daemon, to find its default control socket').argParser(numberOption('--port')))
    .option('--json', 'print the raw JSON');
  if (vni === 'filter') command.addOption(new Option('--vni <n>', 'only this VNI').argParser(numberOption('--vni')));
  if (vni === 'required') command.addOption(new Option('--vni <n>', 'the VNI').argParser(numberOption('--vni')).makeOptionMandatory());
  return command;
}

async function request(options: ClientOptions, method: string, path: string, body?: unknown): Promise<unknown> {
  try {
    return await controlRequest(endpointOf(options), method, path, body);
  } catch (error) {
    if (error instanceof ControlClientError) fail(EXIT_FAILURE, error.message);
    throw error;
  }
}

function print(options: ClientOptions, value: unknown, text: () => string): void {
  process.stdout.write(options.json ? `${JSON.stringify(value, null, 2)}\n` : text());
}

function vniQuery(options: ClientOptions): string {
  return options.vni === undefined ? '' : `?vni=${options.vni}`;
}

/** Columns padded to their widest cell. */
function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column])).join('  ').trimEnd()).join('\n') + '\n';
}

export function registerControlCommands(program: Command): void {
  withClientOptions(program.command('status').description('networks served by the running daemon, with MTUs and counters'), 'none').action(
    async (options: ClientOptions) => {
      const result = (await request(options, 'GET', '/networks')) as { networks: NetworkView[]; engine: Record<string, number> };
      print(options, result, () => {
        const rows = [['VNI', 'TAP', 'BRIDGE', 'MTU', 'OVERLAY-MTU', 'PEERS', 'FDB', 'RX', 'TX', 'FLOODED', 'DROPS']];
        for (const n of result.networks) {
          const drops = Object.values(n.counters.drops).reduce((a, b) => a + b, 0);
          rows.push([String(n.vni), n.tap, n.bridge, String(n.tapMtu), String(n.overlayMtu), n.peers.join(','), `${n.fdbEntries}/${n.fdbLimit}`,
            String(n.counters.rxFrames), String(n.counters.txFrames), String(n.counters.floodedFrames), String(drops)]);
        }
        const engine = `bad headers ${result.engine.badHeader ?? 0}, unknown VNI ${result.engine.unknownVni ?? 0}\n`;
        return table(rows) + engine;
      });
    },
  );

  withClientOptions(program.command('peers').description('peers with their VNIs and traffic counters (all VNIs together)'), 'filter').action(
    async (options: ClientOptions) => {
      const result = (await request(options, 'GET', `/peers${vniQuery(options)}`)) as { peers: PeerView[] };
      print(options, result, () =>
        table([
          ['PEER', 'VNIS', 'RX-DATAGRAMS', 'RX-BYTES', 'TX-DATAGRAMS', 'TX-BYTES'],
          ...result.peers.map((p) => [p.address, p.vnis.join(','), String(p.rxDatagrams), String(p.rxBytes), String(p.txDatagrams), String(p.txBytes)]),
        ]),
      );
    },
  );

  const peer = program.command('peer').description('add or remove a peer of a running daemon');
  withClientOptions(peer.command('add <address>').description('add a peer to a VNI'), 'required').action(
    async (address: string, options: ClientOptions) => {
      const result = (await request(options, 'POST', '/peers', { vni: options.vni, address })) as { added: boolean };
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
    print(options, entries, () => {
      const lines: string[] = [];
      for (const n of networks.networks) {
        if (options.vni !== undefined && n.vni !== options.vni) continue;
        // The flood list, shown as the kernel shows it: all-zeros MAC entries.
        for (const p of n.peers) lines.push(`00:00:00:00:00:00 dev ${n.tap} dst ${p} vni ${n.vni} self permanent`);
        for (const e of entries.entries.filter((x) => x.vni === n.vni)) {
          lines.push(`${e.mac} dev ${n.tap} dst ${e.remote} vni ${e.vni} self ${e.isStatic ? 'static' : `age ${e.ageSeconds}s`}`);
        }
      }
      return lines.map((line) => `${line}\n`).join('');
    });
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
      const result = (await request(options, 'POST', '/reload')) as { changes: string[] };
      print(options, result, () => (result.changes.length ? result.changes.map((c) => `${c}\n`).join('') : 'no changes\n'));
    },
  );
}
