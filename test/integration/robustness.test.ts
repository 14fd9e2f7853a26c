// Bad datagrams from the underlay are dropped and counted, never fatal: a
// wrong VNI, no I flag, too short for a VXLAN header, a header with no room
// for an Ethernet frame. They come from host 2's underlay address (a peer, so
// the sender check does not hide the header checks), with a good datagram
// last, to a running tsvtep on host 1.

import { describe, expect, it } from 'vitest';
import { expectPing, startCapture, startVteps, useTopology } from '../helpers/lab';
import type { DaemonProcess } from '../../src/lab/process';

const VNI = 100;

// Sends hex-encoded datagrams, in order, from argv[1] to argv[2]:4789.
const SENDER = `
const dgram = require('dgram');
const [from, to, ...datagrams] = process.argv.slice(1);
const socket = dgram.createSocket(from.includes(':') ? 'udp6' : 'udp4');
socket.bind(0, from, async () => {
  for (const hex of datagrams) {
    await new Promise((resolve, reject) => socket.send(Buffer.from(hex, 'hex'), 4789, to, (e) => (e ? reject(e) : resolve())));
  }
  socket.close();
});
`;

/** VXLAN header: flags byte, three reserved bytes, VNI, one reserved byte. */
function header(flags: number, vni: number): Buffer {
  return Buffer.from([flags, 0, 0, 0, (vni >> 16) & 0xff, (vni >> 8) & 0xff, vni & 0xff, 0]);
}

/** A broadcast Ethernet frame (local experimental ethertype 0x88b5) carrying a marker text. */
function frame(marker: string): Buffer {
  const payload = Buffer.alloc(46);
  payload.write(marker);
  return Buffer.concat([Buffer.from('ffffffffffff02000999000188b5', 'hex'), payload]);
}

describe('bad datagrams to a running tsvtep', () => {
  let daemons: DaemonProcess[] = [];
  const lab = useTopology({ hosts: 2, vnis: [VNI], ipv6: false }, async (topology) => {
    daemons = await startVteps(topology);
  });

  it('are dropped without harm, and forwarding goes on', async () => {
    const topology = lab();
    const [h1, h2] = topology.hosts;
    const c1 = topology.container(0);
    const bad: [string, Buffer][] = [
      ['wrong VNI', Buffer.concat([header(0x08, VNI + 1), frame('tsvtep-wrong-vni')])],
      ['no I flag', Buffer.concat([header(0x00, VNI), frame('tsvtep-no-i-flag')])],
      ['every flag but I', Buffer.concat([header(0xf7, VNI), frame('tsvtep-only-reserved-flags')])],
      ['empty', Buffer.alloc(0)],
      ['1 byte', Buffer.from([0x08])],
      ['7 bytes', header(0x08, VNI).subarray(0, 7)],
      ['header only', header(0x08, VNI)],
      ['header and half an Ethernet header', Buffer.concat([header(0x08, VNI), frame('x').subarray(0, 7)])],
    ];
    const good = Buffer.concat([header(0x08, VNI), frame('tsvtep-good')]);

    // Frames that tsvtep delivers show up in container 1, markers in ASCII.
    const inC1 = await startCapture(topology, c1.ns, ['-i', 'eth0', '-A', 'ether proto 0x88b5']);
    const datagrams = [...bad.map(([, d]) => d), good].map((d) => d.toString('hex'));
    await topology.execOk(h2.ns, [process.execPath, '-e', SENDER, h2.underlayIp, h1.underlayIp, ...datagrams]);

    // The good one came last; once it is in, every bad one was handled.
    const goodArrived = await inC1.waitFor(/tsvtep-good/);
    const seen = (await inC1.stop()).join('\n');
    expect(goodArrived, `${seen}\n${daemons[0].log()}`).toBe(true);
    expect(seen).not.toMatch(/tsvtep-wrong-vni|tsvtep-no-i-flag|tsvtep-only-reserved-flags/);

    expect(daemons[0].child.exitCode).toBeNull();
    await expectPing(topology, c1, topology.container(1));
    await expectPing(topology, topology.container(1), c1);
    expect(daemons[0].child.exitCode).toBeNull();
    // Nothing at level error (50) or fatal (60) in host 1's log.
    const levels = daemons[0]
      .log()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => (JSON.parse(line) as { level: number }).level);
    expect(levels.length).toBeGreaterThan(0);
    expect(levels.filter((level) => level >= 50)).toEqual([]);
  });
});
