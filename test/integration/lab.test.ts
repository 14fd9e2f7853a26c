// Issue 8: `tsvtep lab up | check | down`, run as a person runs them (the
// built CLI as a child process). Every check must pass, and after `down`
// nothing of the lab may remain: no namespace, no link, no process, no file.
// Each lab gets its own prefix (tsvlab + random hex), so a lab someone has up
// on this machine, or another run of this file, is never touched.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labDir, readState, type LabState } from '../../src/lab/lab';
import { CLI_PATH, isRunning, stopPid } from '../../src/lab/process';
import { namespacesByPrefix, removeByPrefix, runCommand } from '../../src/lab/topology';
import { AS_UNPRIVILEGED_READER } from '../helpers/unprivileged';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `tsvtep lab ARGS`; onStdout sees the output as it comes and may return
 * a signal to send to the command (to crash it at a chosen step).
 */
function lab(args: string[], options: { unprivileged?: boolean; onStdout?: (soFar: string) => NodeJS.Signals | undefined } = {}): Promise<Run> {
  const argv = [CLI_PATH, 'lab', ...args];
  const child =
    options.unprivileged === true
      ? spawn(AS_UNPRIVILEGED_READER[0], [...AS_UNPRIVILEGED_READER.slice(1), process.execPath, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let signalled = false;
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    stdout += chunk;
    const signal = signalled ? undefined : options.onStdout?.(stdout);
    if (signal) {
      signalled = true;
      child.kill(signal);
    }
  });
  child.stderr.on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), 110_000);
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function newPrefix(): string {
  return `tsvlab${randomBytes(2).toString('hex')}`;
}

/** The check lines of `lab check` output: label and pass/FAIL. */
function checkLines(stdout: string): { pass: string[]; fail: string[] } {
  const lines = stdout.split('\n');
  return { pass: lines.filter((l) => / … (\. ?)*pass {2}/.test(l)), fail: lines.filter((l) => / … (\. ?)*FAIL {2}/.test(l)) };
}

/** PIDs of every process whose command line mentions the lab's directory (its daemons and their configs). */
function processesMentioning(text: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) found.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** Links the lab creates, looked for in the root namespace (they must only ever exist inside the lab's). */
async function labLinksInRootNamespace(vnis: number[]): Promise<string[]> {
  const names = new Set(['sw', 'p1', 'p2', 'p3', ...vnis.flatMap((v) => [`br${v}`, `tsv${v}`, `vx${v}`, `v${v}`])]);
  const { stdout } = await runCommand('ip', ['-j', 'link', 'show'], 10_000);
  return (JSON.parse(stdout) as { ifname: string }[]).map((l) => l.ifname).filter((name) => names.has(name));
}

/** Asserts that nothing of lab prefix remains; `seen` is the state it had while up. */
async function expectNothingLeft(prefix: string, seen: LabState | undefined): Promise<void> {
  expect(await namespacesByPrefix(`${prefix}-`)).toEqual([]);
  expect(existsSync(labDir(prefix))).toBe(false);
  expect(processesMentioning(`${labDir(prefix)}/`)).toEqual([]);
  for (const host of seen?.hosts ?? []) {
    if (host.pid !== undefined) expect(isRunning(host.pid, host.startTime ?? 0), `${host.ns} pid ${host.pid}`).toBe(false);
    if (host.control !== undefined) expect(existsSync(host.control), host.control).toBe(false);
  }
  expect(await labLinksInRootNamespace(seen?.options.vnis ?? [100])).toEqual([]);
}

/**
 * `lab down` after the tests of the describe block, whatever happened; if it
 * left anything (the tests then fail), the namespaces and daemons go anyway.
 */
function downAfterAll(prefix: string): void {
  afterAll(async () => {
    const state = readState(prefix);
    await lab(['down', '--prefix', prefix]);
    for (const host of state?.hosts ?? []) if (host.pid !== undefined) await stopPid(host.pid, host.startTime ?? 0, 3_000);
    await removeByPrefix(`${prefix}-`);
  });
}

describe('tsvtep lab: up, check, down (2 hosts, VNI 100, as in seeds 000 and 001)', () => {
  const prefix = newPrefix();
  let up: Run;
  let state: LabState | undefined;
  beforeAll(async () => {
    up = await lab(['up', '--prefix', prefix]);
    state = readState(prefix);
  });
  downAfterAll(prefix);

  it('up builds the lab, prints each step, the map and commands to try', () => {
    expect(up.code, up.stderr).toBe(0);
    expect(up.stderr).toBe('');
    expect(up.stdout).toContain(`Lab ${prefix} is up: 2 hosts on one underlay segment, VNI 100; containers' MTU 1500.`);
    for (const step of [`${prefix}-h1: underlay eth0 10.0.1.41/24 … ok`, `${prefix}-h2: bridge br100, container ${prefix}-c2-100 172.18.0.12 … ok`]) {
      expect(up.stdout).toContain(step);
    }
    expect(up.stdout).toMatch(new RegExp(`${prefix}-h1: tsvtep, VNI 100, peers 10\\.0\\.1\\.42 … (\\.+ )?pid \\d+`));
    expect(up.stdout).toMatch(new RegExp(`${prefix}-c1-100 +eth0 172\\.18\\.0\\.11 +VNI 100: br100 \\+ tsv100`));
    expect(up.stdout).toContain(`sudo ip netns exec ${prefix}-c1-100 ping -c 3 172.18.0.12`);
    expect(up.stdout).toContain(`lab down --prefix ${prefix}`);
  });

  it('its daemons outlive `lab up`, one per host, in the host namespace', async () => {
    expect(state?.status).toBe('up');
    expect(state?.hosts.map((h) => h.ns)).toEqual([`${prefix}-h1`, `${prefix}-h2`]);
    for (const host of state?.hosts ?? []) {
      expect(isRunning(host.pid as number, host.startTime as number)).toBe(true);
      const { stdout } = await runCommand('ip', ['netns', 'identify', String(host.pid)], 10_000);
      expect(stdout.trim()).toBe(host.ns);
    }
  });

  it('check passes every check: ping both ways, TCP transfer both ways, and shows FDB and counters', async () => {
    const result = await lab(['check', '--prefix', prefix]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const { pass, fail } = checkLines(result.stdout);
    expect(fail).toEqual([]);
    expect(pass).toHaveLength(6); // 2 VTEPs, 2 pings, 2 transfers
    expect(result.stdout).toContain('6 of 6 checks passed.');
    expect(result.stdout).toMatch(/172\.18\.0\.12 on \S+-h2 … (\. )?pass {2}5\/5 replies, rtt median [\d.]+ ms/);
    expect(result.stdout).toMatch(/pass {2}32\.0 MiB in [\d.]+ s, \d+ Mbit\/s, sha256 equal/);
    // FDB as the daemons' control interface shows it: each host learned the other's container behind the other's address.
    expect(result.stdout).toContain('02:00:02:00:00:64 dev tsv100 dst 10.0.1.42 vni 100 self');
    expect(result.stdout).toContain('02:00:01:00:00:64 dev tsv100 dst 10.0.1.41 vni 100 self');
    expect(result.stdout).toMatch(/VNI +TAP +BRIDGE +MTU +OVERLAY-MTU +PEERS +FDB +RX +TX +FLOODED +DROPS/);
  });

  it('a second up says the lab is already up and changes nothing', async () => {
    const again = await lab(['up', '--prefix', prefix]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`Lab ${prefix} is already up`);
    expect(again.stdout).not.toContain('… ok');
    expect(readState(prefix)).toEqual(state);
  });

  it('up with other options while it is up fails with one line and changes nothing', async () => {
    const other = await lab(['up', '--prefix', prefix, '--vnis', '1000,2000']);
    expect(other.code).toBe(1);
    expect(other.stderr.trimEnd().split('\n')).toEqual([
      `tsvtep: lab up: lab ${prefix} is already up with 2 hosts on one underlay segment, VNI 100; run \`tsvtep lab down\` first to build another`,
    ]);
    expect(readState(prefix)).toEqual(state);
  });

  it('down stops the daemons and removes every namespace, link and file', async () => {
    const down = await lab(['down', '--prefix', prefix]);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toMatch(/stopping tsvtep on \S+-h1 \(pid \d+\), on \S+-h2 \(pid \d+\) … (\.+ )?stopped, stopped/);
    expect(down.stdout).toContain(`Lab ${prefix} is down: nothing of it is left.`);
    await expectNothingLeft(prefix, state);
    const again = await lab(['down', '--prefix', prefix]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`No lab ${prefix} here; nothing to remove.`);
    const check = await lab(['check', '--prefix', prefix]);
    expect(check.code).toBe(1);
    expect(check.stderr).toBe(`tsvtep: lab check: no lab ${prefix} is up (sudo tsvtep lab up builds one)\n`);
  });
});

/**
 * A lab built with upArgs before the tests, torn down after them: its check
 * passes (`passes` checks, no failure) and its down leaves nothing.
 */
function itChecksAndComesDown(
  upArgs: string[],
  passes: number,
  expectations: { up?: (up: Run, state: LabState | undefined) => void; check?: (stdout: string, pass: string[]) => void },
): void {
  const prefix = newPrefix();
  let up: Run;
  let state: LabState | undefined;
  beforeAll(async () => {
    up = await lab(['up', '--prefix', prefix, ...upArgs]);
    state = readState(prefix);
  });
  downAfterAll(prefix);

  it('up builds it', () => {
    expect(up.code, up.stdout + up.stderr).toBe(0);
    expectations.up?.(up, state);
  });

  it('check passes every check', async () => {
    const result = await lab(['check', '--prefix', prefix]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const { pass, fail } = checkLines(result.stdout);
    expect(fail).toEqual([]);
    expect(pass).toHaveLength(passes);
    expectations.check?.(result.stdout, pass);
  });

  it('down leaves nothing', async () => {
    expect((await lab(['down', '--prefix', prefix])).code).toBe(0);
    await expectNothingLeft(prefix, state);
  });
}

describe('tsvtep lab with two networks (--vnis 1000,2000, seed 002) on a routed underlay (--routed, seed 004)', () => {
  // 2 VTEPs, 4 pings, 2 isolation checks, 4 transfers.
  itChecksAndComesDown(['--vnis', '1000,2000', '--routed'], 12, {
    up: (up) => expect(up.stdout).toContain('2 hosts each in its own subnet behind a router, VNIs 1000, 2000'),
    check: (stdout, pass) => {
      expect(pass.filter((l) => l.includes('0/3 replies from VNI'))).toHaveLength(2);
      // Each network's FDB has only its own containers.
      expect(stdout).toContain('02:00:02:00:03:e8 dev tsv1000 dst 10.0.2.2 vni 1000 self');
      expect(stdout).toContain('02:00:02:00:07:d0 dev tsv2000 dst 10.0.2.2 vni 2000 self');
      expect(stdout).not.toMatch(/02:00:02:00:03:e8 dev tsv2000/);
    },
  });
});

describe("tsvtep lab --with-kernel: the kernel's vxlan on host 2", () => {
  itChecksAndComesDown(['--with-kernel'], 6, {
    up: (up, state) => {
      expect(up.stdout).toContain("host 2 with the kernel's vxlan; containers' MTU 1450");
      expect(up.stdout).toMatch(/-h2: kernel vxlan vx100 \(VNI 100, dstport 4789, MTU 1450\) on br100, peers 10\.0\.1\.41 … ok/);
      expect(state?.hosts.map((h) => h.vtep)).toEqual(['tsvtep', 'kernel']);
    },
    check: (stdout) => expect(stdout).toContain('00:00:00:00:00:00 dst 10.0.1.41 self permanent'), // the kernel's flood entry
  });
});

describe('tsvtep lab after a crash of up', () => {
  const prefix = newPrefix();
  downAfterAll(prefix);

  it('down removes what a killed up left, daemons included; up rebuilds over leftovers', async () => {
    // Killed (SIGKILL, no clean-up) as soon as the first daemon runs, while the next one starts.
    const crashed = await lab(['up', '--prefix', prefix, '--hosts', '3'], {
      onStdout: (soFar) => (new RegExp(`${prefix}-h1: tsvtep.* pid \\d+`).test(soFar) ? 'SIGKILL' : undefined),
    });
    expect(crashed.code).toBeNull();
    const leftover = readState(prefix);
    expect(leftover?.status).toBe('building');
    expect(await namespacesByPrefix(`${prefix}-`)).not.toEqual([]);
    const check = await lab(['check', '--prefix', prefix]);
    expect(check.code).toBe(1);
    expect(check.stderr).toContain('was not completely built');

    const rebuilt = await lab(['up', '--prefix', prefix, '--hosts', '3']);
    expect(rebuilt.code, rebuilt.stdout + rebuilt.stderr).toBe(0);
    expect(rebuilt.stdout).toContain(`Found leftovers of an earlier lab ${prefix}; removing them first.`);
    expect(rebuilt.stdout).toContain(`Lab ${prefix} is up: 3 hosts`);
    const state = readState(prefix);

    // Now crash it differently: the state file is lost, the daemons still run.
    rmSync(`${labDir(prefix)}/state.json`);
    const down = await lab(['down', '--prefix', prefix]);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout.match(/stopping pid \d+ left in \S+-h\d/g)).toHaveLength(3);
    await expectNothingLeft(prefix, state);
    for (const host of leftover?.hosts ?? []) expect(isRunning(host.pid as number, host.startTime as number)).toBe(false);
  });
});

describe('tsvtep lab refuses', () => {
  it('to run without root, with one line', async () => {
    const result = await lab(['up', '--prefix', newPrefix()], { unprivileged: true });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('tsvtep: lab needs root: it creates network namespaces and TAP devices (run it with sudo)\n');
  });

  it('bad options, with one line and exit 2', async () => {
    for (const [args, message] of [
      [['up', '--hosts', '1'], '--hosts 1: a lab has 2 to 8 hosts'],
      [['up', '--vnis', '1000,abc'], '--vnis abc: not a number'],
      [['up', '--vnis', '16777216'], '--vnis: 16777216 is not a VNI (0-16777215)'],
      [['down', '--prefix', 'tv1234'], '--prefix tv1234: 1-12 lowercase letters and digits'],
    ] as const) {
      const result = await lab([...args]);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(result.stderr).toContain(message);
    }
  });
});
