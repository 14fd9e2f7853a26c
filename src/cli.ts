#!/usr/bin/env node
// tsvtep command line. This file owns the process: exit codes and signals.
//   exit 0  clean shutdown (SIGINT/SIGTERM)
//   exit 1  failure to start or to keep running (not root, no bridge, port in use, ...)
//   exit 2  usage error (bad or missing options, invalid config file)

import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import pino from 'pino';
import { ConfigError, parseConfig, type DaemonConfig } from './config';
import { loadConfigFile } from './config-file';
import { registerControlCommands } from './commands/control';
import { registerLabCommands } from './commands/lab';
import { ControlError, ControlServer } from './control/server';
import { defaultControlPath, parseControlEndpoint, type ControlEndpoint } from './control/endpoint';
import { Daemon, StartupError } from './daemon';
import { ListenError } from './http-server';
// Loaded only with --metrics: prom-client costs ~12 MB of resident memory.
import type { MetricsServer } from './metrics';
// Loaded only with --evpn: gRPC and protobufjs are not small either.
import type * as Evpn from './control-plane/evpn';
import { UsageError, numberOption, EXIT_FAILURE, EXIT_USAGE, fail } from './commands/common';

function collect(value: string, previous: string[]): string[] {
  return previous.concat(value.split(',').map((s) => s.trim()).filter((s) => s !== ''));
}

interface DaemonOptions {
  config?: string;
  vni?: number;
  peer: string[];
  bridge?: string;
  dockerNetwork?: string;
  tap?: string;
  port?: number;
  local?: string;
  dev?: string;
  ageing?: number;
  mtu?: number;
  maxAddresses?: number;
  floodRate?: number;
  floodBurst?: number;
  df?: 'set' | 'unset' | 'inherit';
  learnRemotes?: boolean;
  offload?: boolean;
  sourcePorts?: number;
  logLevel?: string;
  control?: string;
  metrics?: string;
  evpn?: string;
  evpnAsn?: number;
  evpnRouterId?: string;
}

/** Flags that describe one network; with --config the file describes networks. */
const NETWORK_FLAGS = ['vni', 'bridge', 'dockerNetwork', 'tap', 'mtu', 'ageing', 'maxAddresses', 'floodRate', 'floodBurst'] as const;

function packageVersion(): string {
  // dist/src/cli.js -> package.json at the package root.
  const pkg = require(path.resolve(__dirname, '..', '..', 'package.json')) as { version: string };
  return pkg.version;
}

function buildProgram(): Command {
  const program = new Command()
    .name('tsvtep')
    .version(packageVersion(), '-V, --version', 'print the version')
    .description('Userspace VXLAN tunnel endpoint: joins a local bridge to remote hosts over UDP (RFC 7348).')
    .exitOverride()
    // Daemon flags go before any subcommand, so `fdb show --vni 1` means the subcommand's --vni.
    .enablePositionalOptions()
    .configureOutput({ writeErr: () => undefined })
    .showHelpAfterError(false)
    .option('--config <file>', 'YAML/JSON file describing any number of networks (SIGHUP re-reads it)')
    .addOption(new Option('--vni <n>', 'VXLAN network identifier, 0-16777215').argParser(numberOption('--vni')))
    .addOption(new Option('--peer <address>', 'remote VTEP (IPv4 or IPv6); repeat or comma-separate').argParser(collect).default([]))
    .option('--bridge <name>', 'bridge to attach the TAP to: Linux or Open vSwitch (e.g. br-c43287381077)')
    .option('--docker-network <name>', "Docker bridge network whose bridge to attach to (asks the Docker Engine; DOCKER_HOST=unix://… is honoured)")
    .option('--tap <name>', 'name of the TAP device (default tsv<vni>)')
    .addOption(new Option('--port <n>', 'UDP port for VXLAN (default 4789)').argParser(numberOption('--port')))
    .option('--local <address>', 'underlay address to send from and listen on (default: all)')
    .option('--dev <name>', 'underlay device whose address to use')
    .addOption(new Option('--ageing <seconds>', 'age of learned MAC entries (default 300)').argParser(numberOption('--ageing')))
    .addOption(new Option('--mtu <bytes>', 'overlay MTU: largest inner packet sent whole (default: underlay route MTU - 50, IPv6 - 70)').argParser(numberOption('--mtu')))
    .addOption(new Option('--max-addresses <n>', 'FDB size limit per VNI (default 16384)').argParser(numberOption('--max-addresses')))
    .addOption(
      new Option('--flood-rate <pps>', 'broadcast/multicast/unknown-unicast frames flooded per second at most (default 2000; 0: no limit)').argParser(
        numberOption('--flood-rate'),
      ),
    )
    .addOption(new Option('--flood-burst <n>', 'frames flooded at once above --flood-rate (default: one second\'s worth)').argParser(numberOption('--flood-burst')))
    .addOption(new Option('--df <mode>', 'DF bit on outer IPv4 packets (inherit: copy the inner IPv4 DF bit)').choices(['set', 'unset', 'inherit']))
    .option('--learn-remotes', 'accept VXLAN from any address, not only peers, and learn it (as the kernel does)')
    .option('--no-offload', 'no TAP offloads (TSO) and no UDP GSO: frame by frame, for comparison')
    .addOption(
      new Option('--source-ports <n>', 'send from n random UDP ports chosen per inner flow, for ECMP (default 8; 1: from --port)').argParser(
        numberOption('--source-ports'),
      ),
    )
    .option('--control <path|addr:port>', 'control interface: Unix socket path or loopback address (default /run/tsvtep/…)')
    .option('--metrics <addr:port>', 'serve Prometheus /metrics and /healthz, e.g. 127.0.0.1:9477 or [::1]:9477 (default off)')
    .option('--evpn <addr:port>', "BGP EVPN through gobgpd's gRPC API (e.g. 127.0.0.1:50051): flood lists and remote MACs from type-3/type-2 routes")
    .addOption(new Option('--evpn-asn <n>', 'AS of the EVPN route targets ASN:VNI (default 65000)').argParser(numberOption('--evpn-asn')))
    .option('--evpn-router-id <ipv4>', 'router ID in the EVPN route distinguishers (default: the VTEP address)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']))
    .action(async (options: DaemonOptions) => runDaemon(options));
  registerControlCommands(program);
  registerLabCommands(program);
  return program;
}

/** Settings that flags override in a config file. */
function overrides(options: DaemonOptions): Record<string, unknown> {
  return {
    port: options.port,
    local: options.local,
    dev: options.dev,
    dontFragment: options.df === undefined ? undefined : options.df === 'inherit' ? 'inherit' : options.df === 'set',
    learnRemotes: options.learnRemotes,
    offload: options.offload === false ? false : undefined,
    sourcePorts: options.sourcePorts,
    logLevel: options.logLevel,
    control: options.control,
    metrics: options.metrics,
    evpn: options.evpn === undefined ? undefined : { api: options.evpn, asn: options.evpnAsn, routerId: options.evpnRouterId },
  };
}

async function configFromOptions(options: DaemonOptions): Promise<DaemonConfig> {
  if (options.evpn === undefined && (options.evpnAsn !== undefined || options.evpnRouterId !== undefined)) {
    throw new UsageError('--evpn-asn and --evpn-router-id go with --evpn ADDR:PORT');
  }
  if (options.config !== undefined) {
    const given = NETWORK_FLAGS.filter((flag) => options[flag] !== undefined);
    if (given.length > 0 || options.peer.length > 0) {
      throw new UsageError('--vni, --peer, --bridge, --docker-network, --tap, --mtu, --ageing, --max-addresses, --flood-rate and --flood-burst describe one network; with --config, put networks in the file');
    }
    return loadConfigFile(options.config, overrides(options));
  }
  if (options.vni === undefined) throw new UsageError('--vni is required (e.g. --vni 100), or --config FILE');
  if (options.bridge === undefined && options.dockerNetwork === undefined) {
    throw new UsageError('--bridge or --docker-network is required (e.g. --bridge br0 or --docker-network vxlan-net)');
  }
  if (options.bridge !== undefined && options.dockerNetwork !== undefined) throw new UsageError('give --bridge or --docker-network, not both');
  const input = {
    ...Object.fromEntries(Object.entries(overrides(options)).filter(([, v]) => v !== undefined)),
    networks: [
      {
        vni: options.vni,
        bridge: options.bridge,
        dockerNetwork: options.dockerNetwork,
        tap: options.tap,
        peers: options.peer,
        mtu: options.mtu,
        ageingSeconds: options.ageing,
        maxAddresses: options.maxAddresses,
        floodRate: options.floodRate,
        floodBurst: options.floodBurst,
      },
    ],
  };
  return parseConfig(input, flagName);
}

/** Maps config field paths back to the flags that set them. */
function flagName(path: PropertyKey[]): string {
  if (path.includes('peers')) return '--peer';
  const field = String(path[path.length - 1]);
  const flags: Record<string, string> = {
    vni: '--vni',
    bridge: '--bridge',
    dockerNetwork: '--docker-network',
    tap: '--tap',
    port: '--port',
    local: '--local',
    dev: '--dev',
    mtu: '--mtu',
    ageingSeconds: '--ageing',
    maxAddresses: '--max-addresses',
    sourcePorts: '--source-ports',
    floodRate: '--flood-rate',
    floodBurst: '--flood-burst',
    networks: '--vni',
    control: '--control',
    metrics: '--metrics',
    api: '--evpn',
    asn: '--evpn-asn',
    routerId: '--evpn-router-id',
    evpn: '--evpn',
  };
  return flags[field] ?? field;
}

function controlEndpoint(config: DaemonConfig): ControlEndpoint {
  if (config.control === undefined) return { kind: 'unix', path: defaultControlPath(config.port) };
  try {
    return parseControlEndpoint(config.control);
  } catch (error) {
    throw new UsageError(`--control: ${(error as Error).message}`);
  }
}

async function runDaemon(options: DaemonOptions): Promise<void> {
  const config = await configFromOptions(options);
  const endpoint = controlEndpoint(config);
  const log = pino({ level: config.logLevel, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));

  let metrics: MetricsServer | undefined;
  let daemon: Daemon;
  let evpn: Evpn.EvpnControlPlane | undefined;
  // GoBGP's API files are checked before any TAP exists.
  const evpnModule = config.evpn ? (require('./control-plane/evpn') as typeof Evpn) : undefined;
  let evpnApi: ReturnType<typeof Evpn.loadEvpnApi> | undefined;
  try {
    evpnApi = evpnModule?.loadEvpnApi();
  } catch (error) {
    if (evpnModule && error instanceof evpnModule.ProtoError) fail(EXIT_FAILURE, error.message);
    throw error;
  }
  try {
    // Metrics listen first, so a taken port fails before any TAP exists.
    if (config.metrics !== undefined) metrics = await (await import('./metrics')).MetricsServer.start(config.metrics, log);
    daemon = await Daemon.start(config, log);
  } catch (error) {
    metrics?.close();
    if (error instanceof StartupError || error instanceof ListenError) fail(EXIT_FAILURE, error.message);
    throw error;
  }
  if (evpnModule && evpnApi && config.evpn) evpn = await evpnModule.EvpnControlPlane.start(daemon, { ...config, evpn: config.evpn }, evpnApi, log);
  metrics?.serve(daemon, evpn);

  const configFile = options.config;
  const reload = async (): Promise<string[]> => {
    if (configFile === undefined) throw new ConfigError('started without --config: nothing to reload');
    const next = await loadConfigFile(configFile, overrides(options));
    const changes = await daemon.reload(next);
    log.info({ changes }, `reloaded ${configFile}: ${changes.length ? changes.join('; ') : 'no changes'}`);
    return changes;
  };

  let control: ControlServer;
  try {
    control = await ControlServer.start(daemon, endpoint, { ...(configFile === undefined ? {} : { reload }), origins: evpn?.origins });
  } catch (error) {
    daemon.stop();
    if (error instanceof ControlError) fail(EXIT_FAILURE, error.message);
    throw error;
  }

  const shutdown = (signal: NodeJS.Signals): void => {
    log.info({ signal }, `${signal}: shutting down`);
    control.close();
    metrics?.close();
    // EVPN withdraws this host's routes first (bounded), so the fabric forgets it at once.
    void (evpn?.stop() ?? Promise.resolve()).finally(() => {
      daemon.stop();
      process.exit(process.exitCode ?? 0);
    });
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  daemon.onFatal = () => {
    control.close();
    metrics?.close();
    void (evpn?.stop() ?? Promise.resolve()).finally(() => process.exit(EXIT_FAILURE));
  };
  process.on('SIGHUP', () => {
    reload().catch((error: unknown) => {
      const message = error instanceof Error ? error.message.replace(/\n/g, '; ') : String(error);
      log.error({ err: message }, `reload failed, keeping the running configuration: ${message}`);
    });
  });
}

async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) process.exit(0); // --help, --version
      fail(EXIT_USAGE, `${error.message.replace(/^error: /, '')} (tsvtep --help lists options)`);
    }
    if (error instanceof UsageError) fail(EXIT_USAGE, `${error.message} (tsvtep --help lists options)`);
    if (error instanceof ConfigError) {
      const lines = error.message.split('\n');
      fail(EXIT_USAGE, lines.length > 1 ? `${lines[0]} (and ${lines.length - 1} more problem(s))` : lines[0]);
    }
    throw error;
  }
}

main(process.argv).catch((error: unknown) => {
  fail(EXIT_FAILURE, `unexpected error: ${error instanceof Error ? error.message : String(error)}`);
});
