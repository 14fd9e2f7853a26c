// tsvtep lab up | check | down: the tutorials' multi-host lab on this machine,
// in network namespaces (logic in src/lab/lab.ts).
//   up     exit 0 when built or already up, 1 when it cannot build (nothing is left behind)
//   check  exit 0 when every check passed, 1 otherwise
//   down   exit 0 when nothing of the lab is left

import { Option, type Command } from 'commander';
// The lab's modules load when a lab command runs, not for every tsvtep command.
import type { LabOptions, Progress } from '../lab/lab';
import { EXIT_FAILURE, UsageError, fail, numberOption } from './common';

interface UpFlags {
  hosts: number;
  routed?: boolean;
  vnis: string;
  withKernel?: boolean;
  prefix: string;
}

/** The lab's default name prefix (src/lab/lab.ts has the same). */
const LAB_PREFIX = 'tsvlab';
const MAX_HOSTS = 8;
const MAX_VNIS = 8;

function requireRoot(): void {
  if (process.getuid?.() !== 0) fail(EXIT_FAILURE, 'lab needs root: it creates network namespaces and TAP devices (run it with sudo)');
}

function checkPrefix(prefix: string): string {
  // Names are PREFIX-h1, PREFIX-c1-1000, …; `tv…` is what the tests' topologies use.
  if (!/^[a-z][a-z0-9]{0,11}$/.test(prefix) || prefix.startsWith('tv')) {
    throw new UsageError(`--prefix ${prefix}: 1-12 lowercase letters and digits, starting with a letter other than "tv"`);
  }
  return prefix;
}

function labOptions(flags: UpFlags): LabOptions {
  if (!Number.isInteger(flags.hosts) || flags.hosts < 2 || flags.hosts > MAX_HOSTS) {
    throw new UsageError(`--hosts ${flags.hosts}: a lab has 2 to ${MAX_HOSTS} hosts`);
  }
  const vnis = flags.vnis.split(',').map((text) => {
    const vni = numberOption('--vnis')(text);
    if (!Number.isInteger(vni) || vni < 0 || vni > 0xffffff) throw new UsageError(`--vnis: ${text.trim()} is not a VNI (0-16777215)`);
    return vni;
  });
  if (new Set(vnis).size !== vnis.length) throw new UsageError(`--vnis ${flags.vnis}: a VNI appears twice`);
  if (vnis.length > MAX_VNIS) throw new UsageError(`--vnis: at most ${MAX_VNIS} networks`);
  return { prefix: checkPrefix(flags.prefix), hosts: flags.hosts, routed: flags.routed ?? false, vnis, withKernel: flags.withKernel ?? false };
}

function prefixOption(): Option {
  return new Option('--prefix <name>', 'name prefix of the lab\'s namespaces, to run several labs side by side').default(LAB_PREFIX);
}

/** Runs body; an error (a LabError, or one from `ip`) becomes one line and exit 1. */
async function failing<T>(what: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    if (error instanceof UsageError) throw error;
    fail(EXIT_FAILURE, `${what}: ${(error as Error).message.split('\n')[0]}`);
  }
}

export function registerLabCommands(program: Command): void {
  const lab = program
    .command('lab')
    .description("the tutorials' multi-host lab on this machine, in network namespaces: lab up, lab check, lab down");
  const lab$ = async (): Promise<typeof import('../lab/lab') & { progress: Progress }> => {
    const module = await import('../lab/lab');
    return { ...module, progress: new module.Progress((text) => process.stdout.write(text)) };
  };
  // Output closed early (`lab up | head`): the lab is still built, or removed, to the end.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });

  lab
    .command('up')
    .description('build hosts, bridges and containers in namespaces, with tsvtep on every host')
    .addOption(new Option('--hosts <n>', `number of hosts, 2-${MAX_HOSTS}`).argParser(numberOption('--hosts')).default(2))
    .option('--routed', 'put each host in its own subnet behind a router namespace (seed 004)')
    .addOption(new Option('--vnis <list>', 'networks, comma-separated: one bridge and one container per VNI on every host').default('100'))
    .option('--with-kernel', "host 2 runs the kernel's vxlan instead of tsvtep (interoperation); containers' MTU 1450")
    .addOption(prefixOption())
    .action(async (flags: UpFlags) => {
      const options = labOptions(flags);
      requireRoot();
      // Ctrl-C while building stops at the next step and removes what was built; a second one ends at once.
      const abort = new AbortController();
      const onSignal = (signal: NodeJS.Signals): void => abort.abort(signal);
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const { labUp, describeLab, labMap, progress } = await lab$();
      const { state, already } = await failing('lab up', () => labUp(options, progress, abort.signal));
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      if (already) progress.line(`Lab ${state.prefix} is already up (since ${state.createdAt}), nothing changed: ${describeLab(state)}.`);
      else progress.line(`Lab ${state.prefix} is up: ${describeLab(state)}.`);
      progress.line();
      process.stdout.write(labMap(state));
    });

  lab
    .command('check')
    .description('ping inside each network, isolation between networks, a TCP transfer; then FDB and counters (exit 1 if any check fails)')
    .addOption(prefixOption())
    .action(async (flags: { prefix: string }) => {
      const prefix = checkPrefix(flags.prefix);
      requireRoot();
      const { labCheck, progress } = await lab$();
      const { failed } = await failing('lab check', () => labCheck(prefix, progress));
      if (failed > 0) process.exitCode = EXIT_FAILURE;
    });

  lab
    .command('down')
    .description('stop the lab\'s daemons and remove its namespaces and files (also after a crash of up)')
    .addOption(prefixOption())
    .action(async (flags: { prefix: string }) => {
      const prefix = checkPrefix(flags.prefix);
      requireRoot();
      const { labDown, progress } = await lab$();
      progress.line(`Removing lab ${prefix}.`);
      const found = await failing('lab down', () => labDown(prefix, progress));
      progress.line(found ? `Lab ${prefix} is down: nothing of it is left.` : `No lab ${prefix} here; nothing to remove.`);
    });
}
