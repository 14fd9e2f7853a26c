// RFC 7348 section 5: the outer UDP source port carries flow entropy. Several
// inner TCP flows leave from several source ports in 49152-65535, each flow
// from one port, and the peer (tsvtep or the kernel) takes them all.

import { describe, expect, it } from 'vitest';
import { addKernelVxlan } from '../../src/lab/kernel';
import { startDaemon, type DaemonProcess } from '../../src/lab/process';
import { expectPing, expectTransfer, startCapture, useTopology, waitForTcp } from '../helpers/lab';

function sourcePorts(lines: string[], from: string): Set<number> {
  const ports = new Set<number>();
  for (const line of lines) {
    const match = new RegExp(`^IP ${from.replace(/\./g, '\\.')}\\.(\\d+) > [\\d.]+\\.4789: VXLAN`).exec(line);
    if (match) ports.add(Number(match[1]));
  }
  return ports;
}

describe('outer source ports', () => {
  let daemon: DaemonProcess | undefined;
  const topology = useTopology({ hosts: 2, containerMtu: 1450, ipv6: false }, async (t) => {
    daemon = await startDaemon(t, t.hosts[0].ns, ['--vni', '100', '--bridge', 'br100', '--peer', t.hosts[1].underlayIp]);
    await addKernelVxlan(t, t.hosts[1], { vni: 100, peers: [t.hosts[0].underlayIp] });
  });

  it('spread flows over several ports in 49152-65535, and a kernel vxlan peer takes them', async () => {
    const t = topology();
    await expectPing(t, t.container(0), t.container(1));
    const capture = await startCapture(t, t.hosts[1].ns, ['-i', 'eth0', '-c', '4000', 'udp', 'dst', 'port', '4789', 'and', 'src', 'host', t.hosts[0].underlayIp]);
    const server = t.spawn(t.container(1).ns, ['iperf3', '-s', '-1']);
    expect(await waitForTcp(t, t.container(1).ns, 5201, 'listening'), 'iperf3 -s did not listen').toBe(true);
    const client = await t.exec(t.container(0).ns, ['iperf3', '-c', t.container(1).ip, '-P', '8', '-t', '2', '-J'], 30_000);
    expect(client.code, client.stderr).toBe(0);
    server.kill();
    const ports = sourcePorts(await capture.stop(), t.hosts[0].underlayIp);
    expect(ports.size, [...ports].join(',')).toBeGreaterThanOrEqual(3);
    for (const port of ports) expect(port).toBeGreaterThanOrEqual(49_152);
    await expectTransfer(t, t.container(0), t.container(1));
  });

  it('come from the VXLAN port itself with --source-ports 1', async () => {
    const t = topology();
    const h = t.hosts[0];
    // Restart host 1's daemon with one source port.
    expect(await daemon?.stop()).toBe(0);
    await startDaemon(t, h.ns, ['--vni', '100', '--bridge', 'br100', '--peer', t.hosts[1].underlayIp, '--source-ports', '1']);
    const capture = await startCapture(t, t.hosts[1].ns, ['-i', 'eth0', '-c', '20', 'udp', 'dst', 'port', '4789', 'and', 'src', 'host', h.underlayIp]);
    await expectPing(t, t.container(0), t.container(1));
    expect([...sourcePorts(await capture.stop(), h.underlayIp)]).toEqual([4789]);
  });
});
