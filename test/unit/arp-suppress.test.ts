// Local MAC/IP learning from TAP frames, and ARP/ND answered from bindings.

import { describe, expect, it } from 'vitest';
import { NeighbourSuppressor, TapObserver } from '../../src/core/arp-suppress';
import { finishChecksum, ipv6PseudoHeaderSum, sumWords } from '../../src/core/checksum';
import { formatMac } from '../../src/core/ethernet';
import { systemClock } from '../../src/core/clock';
import { LocalMacs } from '../../src/core/local-macs';
import type { FramePort } from '../../src/core/ports';
import type { FrameBatch } from '../../src/core/batches';

const mac = (text: string): Buffer => Buffer.from(text.replace(/:/g, ''), 'hex');
const ip4 = (text: string): Buffer => Buffer.from(text.split('.').map(Number));

function arpRequest(senderMac: string, senderIp: string, targetIp: string): Buffer {
  return Buffer.concat([mac('ff:ff:ff:ff:ff:ff'), mac(senderMac), Buffer.from([0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]), mac(senderMac), ip4(senderIp), Buffer.alloc(6), ip4(targetIp), Buffer.alloc(18)]);
}

function neighbourSolicitation(senderMac: string, source: Buffer, target: Buffer): Buffer {
  const frame = Buffer.alloc(14 + 40 + 32);
  mac('33:33:ff:00:00:12').copy(frame, 0);
  mac(senderMac).copy(frame, 6);
  frame.writeUInt16BE(0x86dd, 12);
  frame.writeUInt32BE(0x60000000, 14);
  frame.writeUInt16BE(32, 18);
  frame[20] = 58;
  frame[21] = 255;
  source.copy(frame, 22);
  Buffer.from('ff0200000000000000000001ff000012', 'hex').copy(frame, 38);
  frame[54] = 135;
  target.copy(frame, 62);
  frame[78] = 1;
  frame[79] = 1;
  mac(senderMac).copy(frame, 80);
  return frame;
}

class CapturingPort implements FramePort {
  readonly written: Buffer[] = [];
  readFrames(): number {
    return 0;
  }
  writeFrames(batch: FrameBatch): number {
    for (let i = 0; i < batch.count; i++) {
      this.written.push(Buffer.from(batch.bytes.subarray(batch.offsets[i], batch.offsets[i] + batch.lengths[i])));
      batch.results[i] = 0;
    }
    return batch.count;
  }
}

const clock = { t: 0, now() { return this.t; } };

describe('local MACs seen on the TAP', () => {
  it('notes each MAC once with the IPs it uses (ARP sender, IPv4 and IPv6 source), and ages them', () => {
    const macs = new LocalMacs(16, clock);
    macs.observe(arpRequest('02:00:01:00:00:64', '172.18.0.11', '172.18.0.12'), 0, 60);
    const changes = macs.changes();
    expect(changes.map((c) => [formatMac(c.macHigh, c.macLow), c.ipv4])).toEqual([['02:00:01:00:00:64', 0xac12000b]]);
    macs.observe(arpRequest('02:00:01:00:00:64', '172.18.0.11', '172.18.0.12'), 0, 60);
    expect(macs.changes()).toEqual([]);
    const ns = neighbourSolicitation('02:00:01:00:00:64', Buffer.from('fd180000000000000000000000000011', 'hex'), Buffer.alloc(16));
    macs.observe(ns, 0, ns.length);
    expect(macs.changes()[0].ipv6?.toString('hex')).toBe('fd180000000000000000000000000011');
    clock.t = 10_000;
    expect(macs.ageOut(5_000).map((c) => formatMac(c.macHigh, c.macLow))).toEqual(['02:00:01:00:00:64']);
    expect(macs.size).toBe(0);
  });

  it('holds at most its capacity and counts the rest', () => {
    const macs = new LocalMacs(4, clock);
    for (let i = 0; i < 10; i++) macs.observe(arpRequest(`02:00:00:00:00:${i.toString(16).padStart(2, '0')}`, '10.0.0.1', '10.0.0.2'), 0, 60);
    expect(macs.size).toBe(4);
    expect(macs.full).toBe(6);
  });
});

describe('ARP and ND suppression', () => {
  it('answers an ARP request for a known IP with the MAC, and passes unknown ones on', () => {
    const port = new CapturingPort();
    const suppressor = new NeighbourSuppressor();
    suppressor.replace([{ ip: '172.18.0.12', mac: '02:00:02:00:00:64' }]);
    const observer = new TapObserver(port, undefined, suppressor);
    expect(observer.fromTap(arpRequest('02:00:01:00:00:64', '172.18.0.11', '172.18.0.99'), 0, 60)).toBe(false);
    expect(observer.fromTap(arpRequest('02:00:01:00:00:64', '172.18.0.11', '172.18.0.12'), 0, 60)).toBe(true);
    expect(suppressor.counters.arpSuppressed).toBe(1);
    const reply = port.written[0];
    expect(reply.length).toBe(60);
    expect(reply.subarray(0, 6)).toEqual(mac('02:00:01:00:00:64'));
    expect(reply.subarray(6, 12)).toEqual(mac('02:00:02:00:00:64'));
    expect(reply.readUInt16BE(20)).toBe(2);
    expect(reply.subarray(22, 28)).toEqual(mac('02:00:02:00:00:64'));
    expect(reply.subarray(28, 32)).toEqual(ip4('172.18.0.12'));
    expect(reply.subarray(32, 38)).toEqual(mac('02:00:01:00:00:64'));
    expect(reply.subarray(38, 42)).toEqual(ip4('172.18.0.11'));
    // Gratuitous ARP (sender = target) is never answered.
    expect(observer.fromTap(arpRequest('02:00:01:00:00:64', '172.18.0.12', '172.18.0.12'), 0, 60)).toBe(false);
  });

  it('answers a neighbour solicitation with a valid neighbour advertisement', () => {
    const port = new CapturingPort();
    const suppressor = new NeighbourSuppressor();
    suppressor.replace([{ ip: 'fd18::12', mac: '02:00:02:00:00:64' }]);
    const source = Buffer.from('fd180000000000000000000000000011', 'hex');
    const target = Buffer.from('fd180000000000000000000000000012', 'hex');
    expect(suppressor.answer(neighbourSolicitation('02:00:01:00:00:64', source, target), 0, 86, port)).toBe(true);
    const na = port.written[0];
    expect(na[54]).toBe(136);
    expect(na.subarray(22, 38)).toEqual(target);
    expect(na.subarray(38, 54)).toEqual(source);
    expect(na.subarray(80, 86)).toEqual(mac('02:00:02:00:00:64'));
    // The checksum over the pseudo-header and the message comes out right.
    expect(finishChecksum(sumWords(na, 54, 32, ipv6PseudoHeaderSum(na, 14, 32, 58)))).toBe(0);
    expect(suppressor.counters.ndSuppressed).toBe(1);
    // From :: (duplicate address detection): not answered.
    expect(suppressor.answer(neighbourSolicitation('02:00:01:00:00:64', Buffer.alloc(16), target), 0, 86, port)).toBe(false);
  });
});

describe('on the data path', () => {
  it('noting frames and answering ARP allocate nothing: 3 million more frames cause no more scavenges', async () => {
    const { PerformanceObserver, constants } = await import('node:perf_hooks');
    const port = new CapturingPort();
    port.writeFrames = (batch: FrameBatch) => {
      for (let i = 0; i < batch.count; i++) batch.results[i] = 0;
      return batch.count;
    };
    const suppressor = new NeighbourSuppressor();
    suppressor.replace([{ ip: '172.18.0.12', mac: '02:00:02:00:00:64' }]);
    const observer = new TapObserver(port, new LocalMacs(64, systemClock), suppressor);
    const request = arpRequest('02:00:01:00:00:64', '172.18.0.11', '172.18.0.12');
    const ipv4 = Buffer.concat([mac('02:00:02:00:00:64'), mac('02:00:01:00:00:65'), Buffer.from([0x08, 0x00, 0x45]), Buffer.alloc(83)]);
    const run = (frames: number): void => {
      for (let i = 0; i < frames; i++) observer.fromTap(i & 1 ? request : ipv4, 0, 60);
    };
    run(300_000); // warm up: optimised code keeps numbers unboxed
    // Scavenges while frames go through. The test runner shares this process and may cost one
    // now and then; that cancels out between a short and a long run, and allocation per frame
    // does not (16 bytes a frame would be 48 MB more over the 3 million between the two).
    const scavengesDuring = async (frames: number): Promise<number> => {
      let scavenges = 0;
      const gc = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) if ((entry as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges++;
      });
      gc.observe({ entryTypes: ['gc'] });
      run(frames);
      await new Promise((resolve) => setTimeout(resolve, 50));
      gc.disconnect();
      return scavenges;
    };
    const short = await scavengesDuring(1_000_000);
    const long = await scavengesDuring(4_000_000);
    expect(long - short).toBeLessThanOrEqual(1);
    expect(suppressor.counters.arpSuppressed).toBe(150_000 + 500_000 + 2_000_000);
  });
});
