// MTU and fragment guards: containers with MTU 1500 on their bridges, a
// 1500-byte underlay, and no MTU tuning anywhere. What does not fit the
// underlay is answered with ICMP "too big" (IPv4 with DF, IPv6) or split into
// fragments (IPv4 without DF), so TCP finds its way and nothing vanishes.
//
// The kernel's vxlan, set up as the tutorials do, runs alongside on another
// VNI of the same hosts to show the difference: its device gets MTU 1450, the
// bridge follows its smallest port, and frames from 1500-byte containers are
// dropped by the bridge before anything can answer.

import { describe, expect, it } from 'vitest';
import { tcpTransfer, waitForPing } from '../../src/lab/checks';
import { addKernelVxlan } from '../../src/lab/kernel';
import { startDaemon, type DaemonProcess } from '../../src/lab/process';
import type { Container, Topology } from '../../src/lab/topology';
import { expectTransfer, peerArgs, startCapture, useTopology } from '../helpers/lab';

const TSVTEP_VNI = 100;
const KERNEL_VNI = 200;
/** The kernel vxlan listens on its own default port, so both run on the same hosts. */
const KERNEL_PORT = 8472;

/** `ping` with the flags given, from a container; never throws on loss. */
async function pingWith(topology: Topology, from: Container, address: string, flags: string[], count = 3) {
  const args = ['ping', '-n', '-c', String(count), '-i', '0.2', '-W', '2', ...flags, address];
  const result = await topology.exec(from.ns, args, 30_000);
  const output = result.stdout + result.stderr;
  const summary = /(\d+) packets transmitted, (\d+) received/.exec(output);
  return { sent: Number(summary?.[1] ?? 0), received: Number(summary?.[2] ?? 0), output };
}

/** Makes a container forget the path MTUs it learned, so the next test starts from 1500. */
async function forgetPathMtus(topology: Topology, container: Container): Promise<void> {
  await topology.execOk(container.ns, ['ip', 'route', 'flush', 'cache']);
  await topology.execOk(container.ns, ['ip', '-6', 'route', 'flush', 'cache']);
}

async function linkMtu(topology: Topology, ns: string, link: string): Promise<number> {
  const [info] = JSON.parse(await topology.execOk(ns, ['ip', '-j', 'link', 'show', 'dev', link])) as { mtu: number }[];
  return info.mtu;
}

/** The JSON log lines of a daemon. */
function logLines(daemon: DaemonProcess): Record<string, unknown>[] {
  return daemon
    .log()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('containers at MTU 1500, underlay 1500, no tuning: tsvtep (VNI 100) and kernel vxlan (VNI 200) side by side', () => {
  let daemons: DaemonProcess[] = [];
  const startVteps = async (topology: Topology, extra: string[]): Promise<void> => {
    await Promise.all(daemons.map((d) => d.stop()));
    daemons = [];
    for (const host of topology.hosts) {
      const bridge = host.bridges.get(TSVTEP_VNI) as string;
      daemons.push(await startDaemon(topology, host.ns, ['--vni', String(TSVTEP_VNI), '--bridge', bridge, ...peerArgs(topology, host.index), ...extra]));
    }
  };
  const lab = useTopology({ hosts: 2, containerMtu: 1500, underlayMtu: 1500, vnis: [TSVTEP_VNI, KERNEL_VNI] }, async (topology) => {
    await startVteps(topology, []);
    for (const host of topology.hosts) {
      const peer = topology.hosts[1 - host.index].underlayIp;
      await addKernelVxlan(topology, host, { vni: KERNEL_VNI, peers: [peer], port: KERNEL_PORT });
    }
  });
  const c1 = (vni = TSVTEP_VNI): Container => lab().container(0, vni);
  const c2 = (vni = TSVTEP_VNI): Container => lab().container(1, vni);

  it('derives the overlay MTU from the underlay (1500 - 50) and leaves the TAP and bridge at 1500', async () => {
    for (const [i, daemon] of daemons.entries()) {
      const line = logLines(daemon).find((l) => l.vni === TSVTEP_VNI && l.overlayMtu !== undefined);
      expect(line, daemon.log()).toMatchObject({ overlayMtu: 1450, tapMtu: 1500 });
      const ns = lab().hosts[i].ns;
      expect(await linkMtu(lab(), ns, `tsv${TSVTEP_VNI}`)).toBe(1500);
      expect(await linkMtu(lab(), ns, `br${TSVTEP_VNI}`)).toBe(1500);
    }
    expect(await waitForPing(lab(), c1(), c2().ip, 15_000)).toBe(true);
  });

  it('IPv4 without DF: ping -M dont -s 1472 gets every reply, split inside the tunnel, never as outer fragments', async () => {
    const [h1, h2] = lab().hosts;
    const captures = await Promise.all(
      [h1, h2].map((h) => startCapture(lab(), h.ns, ['--immediate-mode', '-i', 'eth0', 'ip and (ip[6:2] & 0x3fff != 0)'], 60)),
    );
    const tunnel = await startCapture(lab(), h1.ns, ['-v', '--immediate-mode', '-i', 'eth0', 'udp dst port 4789'], 60);
    const result = await pingWith(lab(), c1(), c2().ip, ['-M', 'dont', '-s', '1472']);
    const outerFragments = (await Promise.all(captures.map((c) => c.stop()))).flat();
    const carried = await tunnel.stop();
    expect(result.received, result.output).toBe(3);
    expect(outerFragments).toEqual([]);
    // tcpdump decodes the inner packets: requests and replies went as two
    // IPv4 fragments each (1444 + 76 bytes), each in its own VXLAN datagram.
    const text = carried.join('\n');
    expect(text).toMatch(/offset 0, flags \[\+\], proto ICMP \(1\), length 1444\)\n\s+172\.18\.0\.11 > 172\.18\.0\.12: ICMP echo request/);
    expect(text).toMatch(/offset 0, flags \[\+\], proto ICMP \(1\), length 1444\)\n\s+172\.18\.0\.12 > 172\.18\.0\.11: ICMP echo reply/);
    expect(text).toMatch(/offset 1424, flags \[none\], proto ICMP \(1\), length 76\)/);
  });

  it('IPv4 with DF: ping -M do -s 1472 is told "Frag needed" with mtu = 1450, and then plain ping -s 1472 gets replies', async () => {
    await forgetPathMtus(lab(), c1());
    const result = await pingWith(lab(), c1(), c2().ip, ['-M', 'do', '-s', '1472']);
    expect(result.output).toMatch(/Frag needed and DF set \(mtu = 1450\)/);
    expect(result.received).toBe(0);
    // The container's kernel now knows the path: it fragments by itself.
    const plain = await pingWith(lab(), c1(), c2().ip, ['-s', '1472']);
    expect(plain.received, plain.output).toBe(3);
  });

  it('IPv4 TCP: 20 MiB each way arrive intact, with no MTU set anywhere', async () => {
    await forgetPathMtus(lab(), c1());
    await forgetPathMtus(lab(), c2());
    await expectTransfer(lab(), c1(), c2(), 4);
    await expectTransfer(lab(), c2(), c1(), 4);
  });

  it('IPv6: ping -6 -s 1452 is told "Packet too big" with mtu 1450, and TCP over IPv6 then completes both ways', async () => {
    await forgetPathMtus(lab(), c1());
    await forgetPathMtus(lab(), c2());
    expect(await waitForPing(lab(), c1(), c2().ip6, 15_000)).toBe(true);
    const result = await pingWith(lab(), c1(), c2().ip6, ['-s', '1452'], 4);
    expect(result.output).toMatch(/Packet too big: mtu=1450/);
    // The first request is answered with "too big"; the first reply too (the
    // other container learns then), so at least the last ones come back.
    expect(result.received, result.output).toBeGreaterThanOrEqual(1);
    await forgetPathMtus(lab(), c1());
    await forgetPathMtus(lab(), c2());
    await expectTransfer(lab(), c1(), c2(), 6);
    await expectTransfer(lab(), c2(), c1(), 6);
  });

  it('with --no-offload (no TSO: every full-size TCP segment meets the MTU check), TCP still completes, IPv4 and IPv6, both ways', async () => {
    await startVteps(lab(), ['--no-offload']);
    for (const family of [4, 6] as const) {
      await forgetPathMtus(lab(), c1());
      await forgetPathMtus(lab(), c2());
      expect(await waitForPing(lab(), c1(), family === 4 ? c2().ip : c2().ip6, 15_000)).toBe(true);
      await expectTransfer(lab(), c1(), c2(), family);
      await expectTransfer(lab(), c2(), c1(), family);
    }
    // The TCP senders were told by ICMP; nothing was dropped without an answer.
    expect(daemons.every((d) => !/"level":(40|50|60)/.test(d.log())), daemons.map((d) => d.log()).join('\n')).toBe(true);
  });

  it('kernel vxlan, same hosts and containers: small packets pass, full-size frames vanish without an answer, TCP without TSO stalls', async () => {
    const [h1] = lab().hosts;
    // The vxlan device gets 1450 and the bridge follows its smallest port.
    expect(await linkMtu(lab(), h1.ns, `vx${KERNEL_VNI}`)).toBe(1450);
    expect(await linkMtu(lab(), h1.ns, `br${KERNEL_VNI}`)).toBe(1450);
    expect(await waitForPing(lab(), c1(KERNEL_VNI), c2(KERNEL_VNI).ip, 15_000)).toBe(true);
    // 1500 bytes with DF: dropped by the bridge (too big for the vxlan port), no ICMP.
    const df = await pingWith(lab(), c1(KERNEL_VNI), c2(KERNEL_VNI).ip, ['-M', 'do', '-s', '1472']);
    expect(df.received, df.output).toBe(0);
    expect(df.output).not.toMatch(/Frag needed|mtu/);
    // (Without DF it depends on the host: with br_netfilter loaded the bridge
    // itself fragments IPv4 for the smaller port, without it the frame is
    // dropped too. Not asserted. Nor is TCP from containers with TSO on: their
    // multi-segment GSO packets pass the bridge's size check and the vxlan
    // device answers those with ICMP itself, since Linux 5.9.)
    // TCP with full-size segments sent one by one (TSO and GSO off in the
    // containers): every data segment is dropped by the bridge, nothing answers,
    // the transfer never finishes.
    for (const c of [c1(KERNEL_VNI), c2(KERNEL_VNI)]) await lab().execOk(c.ns, ['ethtool', '-K', 'eth0', 'tso', 'off', 'gso', 'off']);
    await expect(tcpTransfer(lab(), c1(KERNEL_VNI), c2(KERNEL_VNI), { bytes: 1024 * 1024, timeoutMs: 10_000 })).rejects.toThrow(/timed out/);
  });
});

describe('routed underlay with a 1400-byte link on the far side of the router', () => {
  let daemons: DaemonProcess[] = [];
  const startVteps = async (topology: Topology, extra: string[]): Promise<void> => {
    await Promise.all(daemons.map((d) => d.stop()));
    daemons = [];
    for (const host of topology.hosts) {
      // Forget path MTUs learned by an earlier run, so each run learns its own.
      await topology.execOk(host.ns, ['ip', 'route', 'flush', 'cache']);
      const args = ['--vni', String(TSVTEP_VNI), '--bridge', host.bridges.get(TSVTEP_VNI) as string, ...peerArgs(topology, host.index), ...extra];
      daemons.push(await startDaemon(topology, host.ns, args));
    }
  };
  const lab = useTopology({ hosts: 2, routed: true, containerMtu: 1500, underlayMtu: 1500, vnis: [TSVTEP_VNI] }, async (topology) => {
    // Host 2 and the router's side towards it: 1400. Host 1 still sees 1500
    // and learns the rest from the router (DF set) or has the router fragment.
    await topology.execOk(topology.coreNs, ['ip', 'link', 'set', 'p2', 'mtu', '1400']);
    await topology.execOk(topology.hosts[1].ns, ['ip', 'link', 'set', 'eth0', 'mtu', '1400']);
    await startVteps(topology, []);
  });
  const c1 = (): Container => lab().container(0);
  const c2 = (): Container => lab().container(1);

  it('each host derives its overlay MTU from its own route: 1450 on host 1, 1350 on host 2', () => {
    const mtus = daemons.map((d) => logLines(d).find((l) => l.overlayMtu !== undefined)?.overlayMtu);
    expect(mtus).toEqual([1450, 1350]);
  });

  for (const args of [['--df', 'unset'], ['--df', 'set'], ['--df', 'inherit'], ['--df', 'set', '--no-offload']]) {
    const df = args[1];
    it(`${args.join(' ')}: 20 MiB of TCP each way arrive intact`, async () => {
      await startVteps(lab(), args);
      await forgetPathMtus(lab(), c1());
      await forgetPathMtus(lab(), c2());
      expect(await waitForPing(lab(), c1(), c2().ip, 15_000)).toBe(true);
      await expectTransfer(lab(), c1(), c2(), 4);
      await expectTransfer(lab(), c2(), c1(), 4);
      if (df !== 'unset') {
        // With DF on the outer packets host 1 learned the 1400-byte link from the router.
        const learned = logLines(daemons[0]).some((l) => l.peer === lab().hosts[1].underlayIp && l.mtu === 1350);
        expect(learned, daemons[0].log()).toBe(true);
      }
    });
  }
});
