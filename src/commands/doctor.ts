// tsvtep doctor: whether this host can run tsvtep as asked, one line per
// check (src/host-checks.ts), each failed one saying what to do.
//   exit 0 when no required check failed (warnings: it runs, but slower)
//   exit 1 when one did; 2 for usage errors

import { Option, type Command } from 'commander';
import { isIP } from 'node:net';
import type { CheckResult, HostCheckOptions } from '../host-checks';
import { EXIT_FAILURE, UsageError, numberOption } from './common';

interface DoctorFlags {
  bridge: string[];
  dockerNetwork: string[];
  docker?: boolean;
  ovs?: boolean;
  port: number;
  peer: string[];
  config?: string;
}

const DEFAULT_PORT = 4789;
const LABELS: Record<CheckResult['status'], string> = { pass: 'pass', fail: 'FAIL', warn: 'warn', skip: 'skip' };

function collect(value: string, previous: string[]): string[] {
  return previous.concat(value.split(',').map((s) => s.trim()).filter((s) => s !== ''));
}

/** One line per check: status, name, what was found or what to do. */
export function doctorReport(results: CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.name.length));
  const lines = results.map((r) => `  ${LABELS[r.status]}  ${r.name.padEnd(width)}  ${r.detail}`);
  const failed = results.filter((r) => r.status === 'fail').length;
  const warned = results.filter((r) => r.status === 'warn').length;
  const verdict =
    failed > 0
      ? `Not ready: ${failed} required check${failed === 1 ? '' : 's'} failed (FAIL above).`
      : `Ready: every required check passed${warned > 0 ? ` (${warned} warning${warned === 1 ? '' : 's'}: tsvtep runs, but slower)` : ''}.`;
  return `${lines.join('\n')}\n${verdict}\n`;
}

async function optionsFrom(flags: DoctorFlags): Promise<HostCheckOptions> {
  for (const peer of flags.peer) if (isIP(peer) === 0) throw new UsageError(`--peer ${peer}: not an IPv4 or IPv6 address`);
  if (!Number.isInteger(flags.port) || flags.port < 1 || flags.port > 65_535) throw new UsageError(`--port ${flags.port}: not a UDP port (1-65535)`);
  const options: HostCheckOptions = {
    bridges: [...flags.bridge],
    dockerNetworks: [...flags.dockerNetwork],
    docker: flags.docker ?? false,
    ovs: flags.ovs ?? false,
    port: flags.port,
    peers: [...flags.peer],
  };
  if (flags.config !== undefined) {
    // The networks of a config file, as the daemon would read it (a bad file is the daemon's usage error).
    const { loadConfigFile } = await import('../config-file');
    const config = await loadConfigFile(flags.config);
    options.port = config.port;
    for (const network of config.networks) {
      if (network.bridge !== undefined) options.bridges.push(network.bridge);
      if (network.dockerNetwork !== undefined) options.dockerNetworks.push(network.dockerNetwork);
      options.peers.push(...network.peers);
    }
  }
  options.bridges = [...new Set(options.bridges)];
  options.dockerNetworks = [...new Set(options.dockerNetworks)];
  options.peers = [...new Set(options.peers)];
  return options;
}

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('whether this host can run tsvtep, and what to do if not: one line per check (exit 1 if a required one fails)')
    .addOption(new Option('--bridge <name>', 'a bridge tsvtep is to attach to (Linux or Open vSwitch); repeat or comma-separate').argParser(collect).default([]))
    .addOption(new Option('--docker-network <name>', 'a Docker network tsvtep is to attach to; repeat or comma-separate').argParser(collect).default([]))
    .option('--docker', 'check that the Docker Engine answers (DOCKER_HOST=unix://… is honoured)')
    .option('--ovs', 'check that Open vSwitch answers')
    .addOption(new Option('--port <n>', 'UDP port tsvtep is to listen on').argParser(numberOption('--port')).default(DEFAULT_PORT))
    .addOption(new Option('--peer <address>', 'a peer whose route and MTU to check; repeat or comma-separate').argParser(collect).default([]))
    .option('--config <file>', "check for the networks of this config file (bridges, Docker networks, peers, port)")
    .action(async (flags: DoctorFlags) => {
      const options = await optionsFrom(flags);
      // Loaded here, not at start-up: the other commands need none of it.
      const { hostChecks } = await import('../host-checks');
      const results = await hostChecks(options);
      process.stdout.write(`tsvtep doctor: can this host run tsvtep?\n${doctorReport(results)}`);
      if (results.some((r) => r.status === 'fail')) process.exitCode = EXIT_FAILURE;
    });
}
