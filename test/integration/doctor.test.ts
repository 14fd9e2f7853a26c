// tsvtep doctor as a person runs it, on a host namespace of a test topology:
// one line per check with pass or FAIL and what to do, exit 0 when every
// required check passes and 1 when one fails (as root, as a user who is not,
// without /dev/net/tun); and `tsvtep lab up` refusing to build on a host that
// fails them, leaving nothing behind.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CLI_PATH } from '../../src/lab/process';
import { namespacesByPrefix } from '../../src/lab/topology';
import { collectOutput, doctorLine, runDoctor, type DoctorRun } from '../helpers/doctor';
import { useTopology } from '../helpers/lab';
import { AS_UNPRIVILEGED_READER } from '../helpers/unprivileged';

const VNI = 100;
const LINE = /^ {2}(pass|FAIL|warn|skip) {2}\S/;
/** A mount namespace of its own in which /dev/net is an empty directory. */
const WITHOUT_TUN = ['unshare', '--mount', '--', 'sh', '-c', 'mount -t tmpfs none /dev/net && exec "$@"', 'sh'];

/** The report's line for check name (its status and detail), failing the test if there is none. */
function line(run: DoctorRun, name: string): string {
  const found = doctorLine(run, name);
  expect(found, `no line for "${name}" in:\n${run.stdout}`).toBeDefined();
  return found as string;
}

function expectReport(run: DoctorRun): void {
  const lines = run.stdout.trimEnd().split('\n');
  expect(lines[0]).toBe('tsvtep doctor: can this host run tsvtep?');
  // One screen: a line per check and the verdict.
  expect(lines.length).toBeLessThanOrEqual(24);
  for (const l of lines.slice(1, -1)) expect(l, run.stdout).toMatch(LINE);
  expect(lines.at(-1)).toMatch(/^(Ready: every required check passed|Not ready: \d+ required checks? failed \(FAIL above\))/);
  expect(run.stderr).toBe('');
}

describe('tsvtep doctor', () => {
  const lab = useTopology({ hosts: 2, vnis: [VNI], ipv6: true });
  const h1 = () => lab().hosts[0];
  const h2 = () => lab().hosts[1];
  const doctor = (ns: string, args: string[], wrapper: string[] = []) => runDoctor(lab(), ns, args, {}, wrapper);

  it('as root, with the bridge and the peers of a working host: every required check passes, exit 0', async () => {
    const run = await doctor(h1().ns, ['--bridge', 'br100', '--peer', h2().underlayIp, '--peer', h2().underlayIp6 as string]);
    expectReport(run);
    expect(run.code, run.stdout).toBe(0);
    expect(line(run, 'root or CAP_NET_ADMIN')).toBe('pass  root or CAP_NET_ADMIN  running as root');
    expect(line(run, '/dev/net/tun')).toMatch(/^pass/);
    expect(line(run, 'ip (iproute2)')).toMatch(/^pass .*iproute2/);
    expect(line(run, 'native addon')).toMatch(/^pass/);
    expect(line(run, 'TAP offloads')).toMatch(/^(pass|warn)/);
    expect(line(run, 'UDP port 4789')).toMatch(/^pass .*free/);
    expect(line(run, 'bridge br100')).toMatch(/^pass .*a Linux bridge$/);
    expect(line(run, `route to ${h2().underlayIp}`)).toMatch(/^pass .*via eth0, MTU 1500: overlay MTU 1450/);
    expect(line(run, `route to ${h2().underlayIp6}`)).toMatch(/^pass .*via eth0, MTU 1500: overlay MTU 1430/);
    // The test TAP is gone again.
    expect(await lab().execOk(h1().ns, ['ip', '-j', 'link', 'show', 'type', 'tun'])).toMatch(/^\[\]\s*$/);
  });

  it('names what fails and what to do: no such bridge, a link that is not one, no route to a peer; exit 1', async () => {
    const run = await doctor(h1().ns, ['--bridge', 'br-nosuch,eth0', '--peer', '10.99.0.1']);
    expectReport(run);
    expect(run.code).toBe(1);
    expect(line(run, 'bridge br-nosuch')).toMatch(/^FAIL .*does not exist \(ip link show type bridge lists bridges\)/);
    expect(line(run, 'bridge eth0')).toMatch(/^FAIL .*eth0 is not a bridge/);
    expect(line(run, 'route to 10.99.0.1')).toMatch(/^FAIL .*no route to 10\.99\.0\.1/);
    expect(run.stdout).toContain('Not ready: 3 required checks failed (FAIL above).');
  });

  it('a UDP port in use: FAIL with what to do, exit 1', async () => {
    // A process of this test holds the port in h1's namespace.
    const holder = lab().spawn(h1().ns, [process.execPath, '-e', "require('dgram').createSocket('udp4').bind(4790, () => console.log('bound'))"]);
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout?.once('data', () => resolve());
        holder.once('exit', (code) => reject(new Error(`the port holder exited ${code}`)));
      });
      const run = await doctor(h1().ns, ['--port', '4790']);
      expectReport(run);
      expect(run.code).toBe(1);
      expect(line(run, 'UDP port 4790')).toMatch(/^FAIL .*in use .*pick another --port/);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('as a user who is not root: FAIL for the privileges, the TAP check not run, exit 1', async () => {
    const run = await doctor(h1().ns, [], AS_UNPRIVILEGED_READER);
    expectReport(run);
    expect(run.code).toBe(1);
    expect(line(run, 'root or CAP_NET_ADMIN')).toMatch(/^FAIL .*uid 65534, no CAP_NET_ADMIN: run as root \(sudo\)/);
    expect(line(run, 'TAP offloads')).toMatch(/^skip .*needs CAP_NET_ADMIN/);
    expect(run.stdout).toContain('Not ready: 1 required check failed (FAIL above).');
  });

  it('without /dev/net/tun: FAIL with what to do, exit 1', async () => {
    const run = await doctor(h1().ns, [], WITHOUT_TUN);
    expectReport(run);
    expect(run.code).toBe(1);
    expect(line(run, '/dev/net/tun')).toMatch(/^FAIL .*missing: load the tun module \(modprobe tun\)/);
  });

  it('usage errors exit 2 with one line', async () => {
    const run = await doctor(h1().ns, ['--peer', 'not-an-address']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^tsvtep: --peer not-an-address: not an IPv4 or IPv6 address/);
    expect(run.stdout).toBe('');
  });
});

describe('tsvtep lab up checks the host first', () => {
  it('without /dev/net/tun it builds nothing: exit 1, one line naming the failed check', async () => {
    const prefix = `tsvlab${randomBytes(3).toString('hex')}`;
    const run = await collectOutput(spawn(WITHOUT_TUN[0], [...WITHOUT_TUN.slice(1), process.execPath, CLI_PATH, 'lab', 'up', '--prefix', prefix]));
    expect(run.code, run.stdout + run.stderr).toBe(1);
    expect(run.stderr).toMatch(/^tsvtep: lab up: this host cannot run tsvtep \(\/dev\/net\/tun: missing: load the tun module .*\); tsvtep doctor checks it all\n$/);
    expect(run.stdout).not.toContain('Building lab');
    expect(await namespacesByPrefix(`${prefix}-`)).toEqual([]);
  });
});
