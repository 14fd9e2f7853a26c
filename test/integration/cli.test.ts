// The command line as a person meets it: usage errors (exit 2) and start
// failures (exit 1) are one line on stderr with no stack trace and leave no
// TAP behind; SIGTERM and SIGINT stop the daemon cleanly (exit 0, TAP gone);
// --tap names the TAP and --local picks the underlay address.

import { describe, expect, it } from 'vitest';
import { addKernelVxlan } from '../../src/lab/kernel';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../../src/lab/process';
import { expectPing, useTopology } from '../helpers/lab';
import { AS_UNPRIVILEGED_READER } from '../helpers/unprivileged';

const VNI = 100;

describe('tsvtep command line', () => {
  const lab = useTopology({ hosts: 2, vnis: [VNI], ipv6: true });
  const h1 = () => lab().hosts[0];
  const h2 = () => lab().hosts[1];
  /** Valid arguments for host 1; tests add or replace what they need. */
  const args = (...more: string[]) => ['--vni', String(VNI), '--bridge', 'br100', '--peer', h2().underlayIp, ...more];

  /**
   * Runs tsvtep in ns to completion (killed after 15 s, which then fails the test);
   * wrapper is a command to run it under (another user, another mount namespace).
   */
  async function run(ns: string, argv: string[], wrapper: string[] = []): Promise<{ code: number | null; stderr: string }> {
    const child = lab().spawn(ns, [...wrapper, process.execPath, CLI_PATH, ...argv]);
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => (stderr += d));
    child.stdout?.resume();
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    clearTimeout(timer);
    return { code, stderr };
  }

  /** Names of the TAP (and TUN) devices in ns. */
  async function taps(ns: string): Promise<string[]> {
    const out = await lab().execOk(ns, ['ip', '-j', 'link', 'show', 'type', 'tun']);
    return (JSON.parse(out.trim() || '[]') as { ifname: string }[]).map((link) => link.ifname);
  }

  /** Exit code, exactly one line "tsvtep: ..." matching message, no stack trace. */
  function expectOneLine(result: { code: number | null; stderr: string }, code: number, message: RegExp): void {
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines, result.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^tsvtep: /);
    expect(lines[0]).toMatch(message);
    expect(result.stderr).not.toMatch(/^\s+at /m);
    expect(result.code, result.stderr).toBe(code);
  }

  async function withDaemon(ns: string, argv: string[], body: (daemon: DaemonProcess) => Promise<void>): Promise<void> {
    const daemon = await startDaemon(lab(), ns, argv);
    try {
      await body(daemon);
    } finally {
      await daemon.stop();
    }
  }

  describe('usage errors exit 2 with one line', () => {
    const cases: [string, () => string[], RegExp][] = [
      ['VNI above 16777215', () => args('--vni', '16777216'), /--vni.*16777216 is out of range/],
      ['VNI below 0', () => args('--vni=-1'), /--vni.*-1 is out of range/],
      ['VNI not a number', () => args('--vni', 'hundred'), /--vni hundred: not a number/],
      ['bad peer address', () => args('--peer', '10.0.1.300'), /--peer.*10\.0\.1\.300 is not an IPv4 or IPv6 address/],
      ['bad --local address', () => args('--local', 'eth0'), /--local.*not an IPv4 or IPv6 address/],
      ['no peers', () => ['--vni', String(VNI), '--bridge', 'br100'], /--peer.*at least one peer/],
      ['unknown option', () => args('--frobnicate'), /unknown option '--frobnicate'/],
    ];
    for (const [name, argv, message] of cases) {
      it(name, async () => {
        expectOneLine(await run(h1().ns, argv()), 2, message);
        expect(await taps(h1().ns)).toEqual([]);
      });
    }
  });

  describe('start failures exit 1 with one line and leave no TAP', () => {
    it('not root', async () => {
      const result = await run(h1().ns, args(), AS_UNPRIVILEGED_READER);
      expectOneLine(result, 1, /not allowed to create TAP tsv100 \(run as root or with CAP_NET_ADMIN\)/);
      expect(await taps(h1().ns)).toEqual([]);
    });

    it('no /dev/net/tun', async () => {
      // A mount namespace of its own in which /dev/net is an empty directory.
      const hide = ['unshare', '--mount', '--', 'sh', '-c', 'mount -t tmpfs none /dev/net && exec "$@"', 'sh'];
      const result = await run(h1().ns, args(), hide);
      expectOneLine(result, 1, /\/dev\/net\/tun is missing/);
      expect(await taps(h1().ns)).toEqual([]);
    });

    it('a peer that is an address of this host', async () => {
      const result = await run(h1().ns, ['--vni', String(VNI), '--bridge', 'br100', '--peer', h2().underlayIp, '--peer', h1().underlayIp]);
      expectOneLine(result, 1, new RegExp(`peer ${h1().underlayIp.replace(/\./g, '\\.')} is an address of this host`));
      expect(await taps(h1().ns)).toEqual([]);
    });

    it('no such bridge', async () => {
      expectOneLine(await run(h1().ns, args('--bridge', 'br-nosuch')), 1, /bridge br-nosuch does not exist/);
      expect(await taps(h1().ns)).toEqual([]);
    });

    it('a link that is not a bridge', async () => {
      expectOneLine(await run(h1().ns, args('--bridge', 'eth0')), 1, /eth0 is not a bridge/);
      expect(await taps(h1().ns)).toEqual([]);
    });

    it('--local address not on this host', async () => {
      expectOneLine(await run(h1().ns, args('--local', '10.9.9.9')), 1, /10\.9\.9\.9 is not on this host/);
      expect(await taps(h1().ns)).toEqual([]);
    });

    it('UDP port in use by a kernel vxlan device', async () => {
      const device = await addKernelVxlan(lab(), h2(), { vni: VNI, peers: [h1().underlayIp] });
      try {
        const argv = ['--vni', String(VNI), '--bridge', 'br100', '--peer', h1().underlayIp];
        expectOneLine(await run(h2().ns, argv), 1, /UDP port 4789 is in use/);
        expect(await taps(h2().ns)).toEqual([]);
      } finally {
        await lab().execOk(h2().ns, ['ip', 'link', 'del', device]);
      }
    });

    it('UDP port in use by another tsvtep', async () => {
      await withDaemon(h1().ns, args(), async (first) => {
        expectOneLine(await run(h1().ns, args('--tap', 'tsvsecond')), 1, /UDP port 4789 is in use/);
        expect(await taps(h1().ns)).toEqual(['tsv100']);
        expect(first.child.exitCode).toBeNull();
      });
    });

    it('TAP name in use by another tsvtep', async () => {
      await withDaemon(h1().ns, args(), async (first) => {
        expectOneLine(await run(h1().ns, args('--port', '4790')), 1, /TAP tsv100 is in use/);
        expect(await taps(h1().ns)).toEqual(['tsv100']);
        expect(first.child.exitCode).toBeNull();
      });
    });

    it('TAP name taken by a link that is not a TAP', async () => {
      expectOneLine(await run(h1().ns, args('--tap', 'eth0')), 1, /eth0 exists and is not a TAP/);
      expect(await taps(h1().ns)).toEqual([]);
    });
  });

  describe('signals', () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      it(`${signal} makes the daemon exit 0 and remove its TAP`, async () => {
        const daemon = await startDaemon(lab(), h1().ns, args());
        try {
          expect(await taps(h1().ns)).toEqual(['tsv100']);
          const exited = new Promise<number | null>((resolve) => daemon.child.once('exit', resolve));
          daemon.child.kill(signal);
          expect(await exited, daemon.log()).toBe(0);
          expect(await taps(h1().ns)).toEqual([]);
        } finally {
          await daemon.stop();
        }
      });
    }
  });

  describe('options', () => {
    it('--tap NAME names the TAP, a port of the bridge', async () => {
      await withDaemon(h1().ns, args('--tap', 'vtep-blue'), async () => {
        expect(await taps(h1().ns)).toEqual(['vtep-blue']);
        const [link] = JSON.parse(await lab().execOk(h1().ns, ['ip', '-j', 'link', 'show', 'dev', 'vtep-blue'])) as { master?: string }[];
        expect(link.master).toBe('br100');
      });
      expect(await taps(h1().ns)).toEqual([]);
    });

    for (const family of [4, 6] as const) {
      it(`--local picks the IPv${family} underlay address; traffic flows from it`, async () => {
        const address = (h: typeof h1) => (family === 4 ? h().underlayIp : h().underlayIp6);
        const endpoint = (h: typeof h1) => (family === 4 ? `${address(h)}:4789` : `[${address(h)}]:4789`);
        const local = (h: typeof h1, peer: typeof h1) => ['--vni', String(VNI), '--bridge', 'br100', '--local', address(h), '--peer', address(peer)];
        await withDaemon(h1().ns, local(h1, h2), async (first) => {
          await withDaemon(h2().ns, local(h2, h1), async () => {
            expect(first.log()).toContain(`listening on UDP ${endpoint(h1)}`);
            const sockets = await lab().execOk(h1().ns, ['ss', '-Hnlu', 'sport', '=', ':4789']);
            expect(sockets.trim().split('\n')).toHaveLength(1);
            expect(sockets).toContain(endpoint(h1));
            // Each side accepts datagrams only from its peer's address, so
            // traffic shows that the other side sends from its --local.
            await expectPing(lab(), lab().container(0), lab().container(1));
          });
        });
      });
    }
  });
});
