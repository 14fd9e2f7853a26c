#!/usr/bin/env node
// tsvtep command line. This file owns the process: exit codes and signals.
//   exit 0  clean shutdown (SIGINT/SIGTERM)
//   exit 1  failure to start or to keep running (not root, no bridge, port in use, ...)
//   exit 2  usage error (bad or missing options)

import { Command, CommanderError, Option } from 'commander';
import pino from 'pino';
import { ConfigError, parseConfig, type DaemonConfig } from './config';
import { Daemon, StartupError } from './daemon';

const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

function collect(value: string, previous: string[]): string[] {
  return previous.concat(value.split(',').map((s) => s.trim()).filter((s) => s !== ''));
}

function numberOption(flag: string) {
  return (value: string): number => {
    const trimmed = value.trim();
    if (!/^-?\d+(\.\d+)?$/.test(trimmed)) throw new UsageError(`${flag} ${value}: not a number`);
    return Number(trimmed);
  };
}

class UsageError extends Error {}

interface CliOptions {
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
}

function buildProgram(): Command {
  return new Command()
    .name('tsvtep')
    .description('Userspace VXLAN tunnel endpoint: joins a local bridge to remote hosts over UDP (RFC 7348).')
    .addOption(new Option('--vni <n>', 'VXLAN network identifier, 0-16777215').argParser(numberOption('--vni')))
    .addOption(new Option('--peer <address>', 'remote VTEP (IPv4 or IPv6); repeat or comma-separate').argParser(collect).default([]))
    .option('--bridge <name>', 'bridge to attach the TAP to (e.g. br-c43287381077)')
    .option('--tap <name>', 'name of the TAP device (default tsv<vni>)')
    .addOption(new Option('--port <n>', 'UDP port for VXLAN').argParser(numberOption('--port')))
    .option('--local <address>', 'underlay address to send from and listen on (default: all)')
    .option('--dev <name>', 'underlay device whose address to use')
    .addOption(new Option('--ageing <seconds>', 'age of learned MAC entries (default 300)').argParser(numberOption('--ageing')))
    .addOption(new Option('--mtu <bytes>', "MTU of the TAP (default: the bridge's)").argParser(numberOption('--mtu')))
    .addOption(new Option('--max-addresses <n>', 'FDB size limit per VNI (default 16384)').argParser(numberOption('--max-addresses')))
    .addOption(new Option('--df <mode>', 'DF bit on outer IPv4 packets').choices(['set', 'unset']))
    .option('--learn-remotes', 'accept VXLAN from any address, not only peers, and learn it (as the kernel does)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']))
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeErr: () => undefined });
}

function toConfigInput(options: CliOptions): unknown {
  if (options.vni === undefined) throw new UsageError('--vni is required (e.g. --vni 100)');
  if (options.bridge === undefined) throw new UsageError('--bridge is required (e.g. --bridge br0)');
  return {
    port: options.port,
    local: options.local,
    dev: options.dev,
    dontFragment: options.df === undefined ? undefined : options.df === 'set',
    learnRemotes: options.learnRemotes,
    logLevel: options.logLevel,
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
}

/** Maps config field paths back to the flags that set them. */
function flagName(path: PropertyKey[]): string {
  const field = String(path[path.length - 1]);
  const inPeers = path.includes('peers');
  if (inPeers) return '--peer';
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
  };
  return flags[field] ?? field;
}

function fail(code: number, message: string): never {
  process.stderr.write(`tsvtep: ${message}\n`);
  process.exit(code);
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  let config: DaemonConfig;
  try {
    program.parse(argv);
    config = parseConfig(toConfigInput(program.opts<CliOptions>()), flagName);
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) process.exit(0); // --help, --version
      fail(EXIT_USAGE, `${error.message.replace(/^error: /, '')} (tsvtep --help lists options)`);
    }
    if (error instanceof UsageError || error instanceof ConfigError) {
      fail(EXIT_USAGE, `${error.message.split('\n')[0]} (tsvtep --help lists options)`);
    }
    throw error;
  }

  const log = pino({ level: config.logLevel, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
  let daemon: Daemon;
  try {
    daemon = await Daemon.start(config, log);
  } catch (error) {
    if (error instanceof StartupError) fail(EXIT_FAILURE, error.message);
    throw error;
  }

  const shutdown = (signal: NodeJS.Signals): void => {
    log.info({ signal }, `${signal}: shutting down`);
    daemon.stop();
    process.exit(process.exitCode ?? 0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main(process.argv).catch((error: unknown) => {
  fail(EXIT_FAILURE, `unexpected error: ${error instanceof Error ? error.message : String(error)}`);
});
