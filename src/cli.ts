#!/usr/bin/env node
// tsvtep command line. This file owns the process: exit codes and signals.
//   exit 0  clean shutdown (SIGINT/SIGTERM)
//   exit 1  failure to start or to keep running (not root, no bridge, port in use, ...)
//   exit 2  usage error (bad or missing options, invalid config file)

import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { ConfigError } from './config-error';
import { registerControlCommands } from './commands/control';
import { registerDoctorCommand } from './commands/doctor';
import { registerLabCommands } from './commands/lab';
import { defaultControlPath, parseControlEndpoint, type ControlEndpoint } from './control/endpoint';
import { UsageError, numberOption, EXIT_FAILURE, EXIT_USAGE, fail } from './commands/common';
// The daemon's modules are loaded only when it runs, so that the control
// subcommands (status, peers, ...) start fast: zod, pino, the daemon and the
// native addon cost some 100 ms. prom-client (~12 MB resident) only with --metrics.
import type { DaemonConfig } from './config';
import type { ControlServer } from './control/server';
import type { Daemon } from './daemon';
import type { MetricsServer } from './metrics';
import type { PreparedEtcd } from './control-plane/attach';
import type { PreparedEvpn } from './control-plane/attach-evpn';

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
  maxRemotes?: number;
  floodRate?: number;
  floodBurst?: number;
  df?: 'set' | 'unset' | 'inherit';
  learnRemotes?: boolean;
  offload?: boolean;
  sourcePorts?: number;
  logLevel?: string;
  control?: string;
  controlTokenFile?: string;
  metrics?: string;
  etcd: string[];
  etcdPrefix?: string;
  etcdTtl?: number;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdFdb?: boolean;
  evpn?: string;
  evpnAsn?: number;
  evpnRouterId?: string;
  suppressArp?: boolean;
}

/** Flags that describe one network; with --config the file describes networks. */
const NETWORK_FLAGS = ['vni', 'bridge', 'dockerNetwork', 'tap', 'mtu', 'ageing', 'maxAddresses', 'maxRemotes', 'floodRate', 'floodBurst'] as const;

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
      new Option('--max-remotes <n>', 'with --learn-remotes: senders that are not peers accepted per VNI at most (default 1024)').argParser(
        numberOption('--max-remotes'),
      ),
    )
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
    .option('--control-token-file <file>', 'with --control ADDR:PORT: read the bearer token from this file (default: a new one in /run/tsvtep/)')
    .option('--metrics <addr:port>', 'serve Prometheus /metrics and /healthz, e.g. 127.0.0.1:9477 or [::1]:9477 (default off)')
    .addOption(new Option('--etcd <url>', 'etcd endpoint(s) of the fleet, e.g. http://10.0.1.1:2379; repeat or comma-separate: peers come from there').argParser(collect).default([]))
    .option('--etcd-prefix <prefix>', 'etcd key prefix (default /tsvtep/)')
    .addOption(new Option('--etcd-ttl <seconds>', 'etcd lease TTL: a stopped host leaves within it (default 10)').argParser(numberOption('--etcd-ttl')))
    .option('--etcd-ca <file>', 'CA certificate for etcd over TLS (https:// endpoints)')
    .option('--etcd-cert <file>', 'client certificate for etcd')
    .option('--etcd-key <file>', 'client key for etcd')
    .option('--etcd-fdb', 'publish the MACs and IPs behind this host in etcd and install the other hosts\' (no flooding to find them)')
    .option('--evpn <addr:port>', "BGP EVPN through gobgpd's gRPC API (e.g. 127.0.0.1:50051): flood lists and remote MACs from type-3/type-2 routes (not with --etcd)")
    .addOption(new Option('--evpn-asn <n>', 'AS of the EVPN route targets ASN:VNI (default 65000)').argParser(numberOption('--evpn-asn')))
    .option('--evpn-router-id <ipv4>', 'router ID in the EVPN route distinguishers (default: the VTEP address)')
    .option('--suppress-arp', 'answer ARP and IPv6 neighbour solicitations for IPs known from etcd or EVPN instead of flooding them (needs --etcd-fdb or --evpn)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']))
    .action(async (options: DaemonOptions) => runDaemon(options));
  registerControlCommands(program);
  registerLabCommands(program);
  registerDoctorCommand(program);
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
    controlTokenFile: options.controlTokenFile,
    metrics: options.metrics,
    etcd: etcdOverride(options),
    evpn: options.evpn === undefined ? undefined : { api: options.evpn, asn: options.evpnAsn, routerId: options.evpnRouterId },
    suppressArp: options.suppressArp,
  };
}

/** The etcd section the flags describe, if --etcd is given. */
function etcdOverride(options: DaemonOptions): Record<string, unknown> | undefined {
  const others = [options.etcdPrefix, options.etcdTtl, options.etcdCa, options.etcdCert, options.etcdKey, options.etcdFdb].some((v) => v !== undefined);
  if (options.etcd.length === 0) {
    if (others) throw new UsageError('--etcd-prefix, --etcd-ttl, --etcd-ca, --etcd-cert, --etcd-key and --etcd-fdb need --etcd URL');
    return undefined;
  }
  const section = { endpoints: options.etcd, prefix: options.etcdPrefix, ttlSeconds: options.etcdTtl, ca: options.etcdCa, cert: options.etcdCert, key: options.etcdKey, fdb: options.etcdFdb };
  return Object.fromEntries(Object.entries(section).filter(([, v]) => v !== undefined));
}

async function configFromOptions(options: DaemonOptions): Promise<DaemonConfig> {
  if (options.evpn === undefined && (options.evpnAsn !== undefined || options.evpnRouterId !== undefined)) {
    throw new UsageError('--evpn-asn and --evpn-router-id go with --evpn ADDR:PORT');
  }
  if (options.config !== undefined) {
    const given = NETWORK_FLAGS.filter((flag) => options[flag] !== undefined);
    if (given.length > 0 || options.peer.length > 0) {
      throw new UsageError('--vni, --peer, --bridge, --docker-network, --tap, --mtu, --ageing, --max-addresses, --max-remotes, --flood-rate and --flood-burst describe one network; with --config, put networks in the file');
    }
    return (await import('./config-file')).loadConfigFile(options.config, overrides(options));
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
        maxRemotes: options.maxRemotes,
        floodRate: options.floodRate,
        floodBurst: options.floodBurst,
      },
    ],
  };
  return (await import('./config')).parseConfig(input, flagName);
}

/** Maps config field paths back to the flags that set them. */
function flagName(path: PropertyKey[]): string {
  if (path.includes('peers')) return '--peer';
  if (path[0] === 'suppressArp') return '--suppress-arp';
  if (path[0] === 'etcd') {
    const etcdFlags: Record<string, string> = { endpoints: '--etcd', prefix: '--etcd-prefix', ttlSeconds: '--etcd-ttl', ca: '--etcd-ca', cert: '--etcd-cert', key: '--etcd-key', fdb: '--etcd-fdb' };
    return etcdFlags[String(path[1])] ?? '--etcd';
  }
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
    maxRemotes: '--max-remotes',
    sourcePorts: '--source-ports',
    floodRate: '--flood-rate',
    floodBurst: '--flood-burst',
    networks: '--vni',
    control: '--control',
    controlTokenFile: '--control-token-file',
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
  const { readTokenFile, TokenError } = await import('./control/token-file');
  const { ControlError, ControlServer } = await import('./control/server');
  const { ChangeError } = await import('./control/api');
  const { Daemon } = await import('./daemon');
  const { StartupError } = await import('./startup-errors');
  const { ListenError } = await import('./metrics-http');
  const { loadConfigFile } = await import('./config-file');
  const { default: pino } = await import('pino');
  const endpoint = controlEndpoint(config);
  // A token file that cannot be used fails before anything is made.
  if (endpoint.kind === 'tcp' && config.controlTokenFile !== undefined) {
    try {
      readTokenFile(config.controlTokenFile);
    } catch (error) {
      if (error instanceof TokenError) fail(EXIT_FAILURE, error.message);
      throw error;
    }
  }
  const log = pino({ level: config.logLevel, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));

  let metrics: MetricsServer | undefined;
  let daemon: Daemon;
  // Loaded only with --etcd or --evpn: their clients are heavy. Files and addresses are checked before any TAP exists.
  const etcdModule = config.etcd !== undefined ? await import('./control-plane/attach') : undefined;
  const evpnModule = config.evpn !== undefined ? await import('./control-plane/attach-evpn') : undefined;
  let etcd: PreparedEtcd | undefined;
  let evpn: PreparedEvpn | undefined;
  try {
    if (etcdModule && config.etcd) etcd = await etcdModule.prepareEtcd({ ...config, etcd: config.etcd });
    if (evpnModule && config.evpn) evpn = await evpnModule.prepareEvpn({ ...config, evpn: config.evpn });
  } catch (error) {
    if (error instanceof StartupError) fail(EXIT_FAILURE, error.message);
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
  const controlPlane = etcdModule && etcd ? etcdModule.attachEtcd(daemon, etcd, log) : evpnModule && evpn ? evpnModule.attachEvpn(daemon, evpn, log) : undefined;
  metrics?.serve(daemon.metricsSource());

  const configFile = options.config;
  const reload = async (): Promise<string[]> => {
    if (configFile === undefined) throw new ConfigError('started without --config: nothing to reload');
    const next = await loadConfigFile(configFile, overrides(options));
    const changes = await daemon.reload(next);
    log.info({ changes }, `reloaded ${configFile}: ${changes.length ? changes.join('; ') : 'no changes'}`);
    return changes;
  };
  // Asked over the control interface, a file that does not validate is the
  // caller's to fix: an 'invalid' change (400, and `tsvtep reload` exits 2).
  const reloadAsked = async (): Promise<string[]> => {
    try {
      return await reload();
    } catch (error) {
      if (error instanceof ConfigError) throw new ChangeError(error.message, 'invalid');
      throw error;
    }
  };

  let control: ControlServer;
  try {
    control = await ControlServer.start(daemon, endpoint, configFile === undefined ? {} : { reload: reloadAsked }, {
      tokenFile: config.controlTokenFile,
      onUnauthorized: (method, url) => log.warn({ method, url }, `control: ${method} ${url} without its bearer token refused (401); further ones are counted, not logged`),
    });
    if (control.auth?.file) log.info({ tokenFile: control.auth.file }, `control port needs a bearer token; root can read it from ${control.auth.file}`);
  } catch (error) {
    daemon.stop();
    if (error instanceof ControlError) fail(EXIT_FAILURE, error.message);
    throw error;
  }

  const withdraw = (): Promise<unknown> =>
    controlPlane ? Promise.race([controlPlane.stop(), new Promise((resolve) => setTimeout(resolve, 2_000))]) : Promise.resolve();
  const shutdown = (signal: NodeJS.Signals): void => {
    log.info({ signal }, `${signal}: shutting down`);
    control.close();
    metrics?.close();
    // The control plane withdraws this host first (bounded: a stuck one only means a lease or route runs out), so the fleet forgets it at once.
    void withdraw().finally(() => {
      daemon.stop();
      process.exit(process.exitCode ?? 0);
    });
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  daemon.onFatal = () => {
    control.close();
    metrics?.close();
    void withdraw().finally(() => process.exit(EXIT_FAILURE));
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
