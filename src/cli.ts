#!/usr/bin/env node
// tsvtep command line. This file owns the process: exit codes and signals.
//   exit 0  clean shutdown (SIGINT/SIGTERM)
//   exit 1  failure to start or to keep running (not root, no bridge, port in use, ...)
//   exit 2  usage error (bad or missing options, invalid config file)

import { Command, CommanderError, Option } from 'commander';
import pino from 'pino';
import { ConfigError, parseConfig, type DaemonConfig } from './config';
import { loadConfigFile } from './config-file';
import { registerControlCommands } from './commands/control';
import { ControlError, ControlServer } from './control/server';
import { defaultControlPath, parseControlEndpoint, type ControlEndpoint } from './control/endpoint';
import { Daemon, StartupError } from './daemon';
import { UsageError, numberOption, EXIT_FAILURE, EXIT_USAGE, fail } from './commands/common';

function collect(value: string, previous: string[]): string[] {
  return previous.concat(value.split(',').map((s) => s.trim()).filter((s) => s !== ''));
}

interface DaemonOptions {
  config?: string;
  vni?: number;
  peer: string[];
  bridge?: string;
  tap?: string;
  port?: number;
  local?: string;
  dev?: string;
  ageing?: number;
  mtu?: number;
  maxAddresses?: number;
  df?: 'set' | 'unset';
  learnRemotes?: boolean;
  logLevel?: string;
  control?: string;
}

/** Flags that describe one network; with --config the file describes networks. */
const NETWORK_FLAGS = ['vni', 'bridge', 'tap', 'mtu', 'ageing', 'maxAddresses'] as const;

function buildProgram(): Command {
  const program = new Command()
    .name('tsvtep')
    .description('Userspace VXLAN tunnel endpoint: joins a local bridge to remote hosts over UDP (RFC 7348).')
    .exitOverride()
    // Daemon flags go before any subcommand, so `fdb show --vni 1` means the subcommand's --vni.
    .enablePositionalOptions()
    .configureOutput({ writeErr: () => undefined })
    .showHelpAfterError(false)
    .option('--config <file>', 'YAML/JSON file describing any number of networks (SIGHUP re-reads it)')
    .addOption(new Option('--vni <n>', 'VXLAN network identifier, 0-16777215').argParser(numberOption('--vni')))
    .addOption(new Option('--peer <address>', 'remote VTEP (IPv4 or IPv6); repeat or comma-separate').argParser(collect).default([]))
    .option('--bridge <name>', 'bridge to attach the TAP to (e.g. br-c43287381077)')
    .option('--tap <name>', 'name of the TAP device (default tsv<vni>)')
    .addOption(new Option('--port <n>', 'UDP port for VXLAN (default 4789)').argParser(numberOption('--port')))
    .option('--local <address>', 'underlay address to send from and listen on (default: all)')
    .option('--dev <name>', 'underlay device whose address to use')
    .addOption(new Option('--ageing <seconds>', 'age of learned MAC entries (default 300)').argParser(numberOption('--ageing')))
    .addOption(new Option('--mtu <bytes>', "MTU of the TAP (default: the bridge's)").argParser(numberOption('--mtu')))
    .addOption(new Option('--max-addresses <n>', 'FDB size limit per VNI (default 16384)').argParser(numberOption('--max-addresses')))
    .addOption(new Option('--df <mode>', 'DF bit on outer IPv4 packets').choices(['set', 'unset']))
    .option('--learn-remotes', 'accept VXLAN from any address, not only peers, and learn it (as the kernel does)')
    .option('--control <path|addr:port>', 'control interface: Unix socket path or loopback address (default /run/tsvtep/…)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']))
    .action(async (options: DaemonOptions) => runDaemon(options));
  registerControlCommands(program);
  return program;
}

/** Settings that flags override in a config file. */
function overrides(options: DaemonOptions): Record<string, unknown> {
  return {
    port: options.port,
    local: options.local,
    dev: options.dev,
    dontFragment: options.df === undefined ? undefined : options.df === 'set',
    learnRemotes: options.learnRemotes,
    logLevel: options.logLevel,
    control: options.control,
  };
}

async function configFromOptions(options: DaemonOptions): Promise<DaemonConfig> {
  if (options.config !== undefined) {
    const given = NETWORK_FLAGS.filter((flag) => options[flag] !== undefined);
    if (given.length > 0 || options.peer.length > 0) {
      throw new UsageError('--vni, --peer, --bridge, --tap, --mtu, --ageing and --max-addresses describe one network; with --config, put networks in the file');
    }
    return loadConfigFile(options.config, overrides(options));
  }
  if (options.vni === undefined) throw new UsageError('--vni is required (e.g. --vni 100), or --config FILE');
  if (options.bridge === undefined) throw new UsageError('--bridge is required (e.g. --bridge br0)');
  const input = {
    ...Object.fromEntries(Object.entries(overrides(options)).filter(([, v]) => v !== undefined)),
    networks: [
      {
        vni: options.vni,
        bridge: options.bridge,
        tap: options.tap,
        peers: options.peer,
        mtu: options.mtu,
        ageingSeconds: options.ageing,
        maxAddresses: options.maxAddresses,
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
    tap: '--tap',
    port: '--port',
    local: '--local',
    dev: '--dev',
    mtu: '--mtu',
    ageingSeconds: '--ageing',
    maxAddresses: '--max-addresses',
    networks: '--vni',
    control: '--control',
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

  let daemon: Daemon;
  try {
    daemon = await Daemon.start(config, log);
  } catch (error) {
    if (error instanceof StartupError) fail(EXIT_FAILURE, error.message);
    throw error;
  }

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
    control = await ControlServer.start(daemon, endpoint, configFile === undefined ? {} : { reload });
  } catch (error) {
    daemon.stop();
    if (error instanceof ControlError) fail(EXIT_FAILURE, error.message);
    throw error;
  }

  const shutdown = (signal: NodeJS.Signals): void => {
    log.info({ signal }, `${signal}: shutting down`);
    control.close();
    daemon.stop();
    process.exit(process.exitCode ?? 0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
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
