import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { VniState } from '../../src/control-plane/source';
import { EvpnSource } from '../../src/control-plane/evpn/evpn-source';
import type { EvpnRib } from '../../src/control-plane/evpn/gobgp-client';
import { loadGobgpApi } from '../../src/control-plane/evpn/proto';
import { decodePath, inclusiveMulticastPath, macIpPath, type ApiPath } from '../../src/control-plane/evpn/routes';

const { codec } = loadGobgpApi();
const me = { routerId: '10.0.1.1', asn: 65000, vtep: '10.0.1.1' };
const host2 = { routerId: '10.0.1.2', asn: 65000, vtep: '10.0.1.2' };
const host3 = { routerId: '10.0.1.3', asn: 65000, vtep: '10.0.1.3' };

/** Paths as gobgpd hands over those it learned from a BGP neighbour. */
const fromPeer = (path: ApiPath, neighborIp = '10.0.1.2'): ApiPath => ({ ...path, neighborIp });
const withdrawn = (path: ApiPath): ApiPath => ({ ...path, isWithdraw: true });

/** A gobgpd stand-in: a RIB of this host's paths, a listing, a watch to push into, failures on demand. */
class FakeGobgpd implements EvpnRib {
  readonly added: ApiPath[] = [];
  readonly deleted: ApiPath[] = [];
  listing: ApiPath[] = [];
  unreachable = false;
  closed = false;
  private onPaths: ((paths: ApiPath[]) => void) | undefined;
  private onEnd: ((error: Error) => void) | undefined;

  async addPath(path: ApiPath): Promise<void> {
    if (this.unreachable) throw Object.assign(new Error('14 UNAVAILABLE'), { details: 'No connection established' });
    this.added.push(path);
  }
  async deletePath(path: ApiPath): Promise<void> {
    this.deleted.push(path);
  }
  async listPaths(): Promise<ApiPath[]> {
    if (this.unreachable) throw Object.assign(new Error('14 UNAVAILABLE'), { details: 'No connection established' });
    return this.listing;
  }
  watch(onPaths: (paths: ApiPath[]) => void, onEnd: (error: Error) => void): void {
    this.onPaths = onPaths;
    this.onEnd = onEnd;
    if (this.unreachable) queueMicrotask(() => onEnd(Object.assign(new Error('14 UNAVAILABLE'), { details: 'No connection established' })));
  }
  close(): void {
    this.closed = true;
  }
  push(...paths: ApiPath[]): void {
    this.onPaths?.(paths);
  }
  die(): void {
    this.onEnd?.(Object.assign(new Error('14 UNAVAILABLE'), { details: 'Connection dropped' }));
  }
  /** What this host announces now, decoded. */
  announced(): string[] {
    const live = new Map<string, ApiPath>();
    const key = (p: ApiPath) => JSON.stringify(decodePath(codec, p));
    for (const p of this.added) live.set(key(p), p);
    for (const p of this.deleted) live.delete(key(p));
    return [...live.keys()].sort();
  }
}

class RecordingSink {
  readonly states = new Map<number, VniState>();
  replace(vni: number, state: VniState): void {
    this.states.set(vni, state);
  }
}

const log = { info: vi.fn(), warn: vi.fn() };

function source(connect: () => EvpnRib): EvpnSource {
  return new EvpnSource({ codec, connect, api: '127.0.0.1:50051', originator: me, log, backoffMs: { first: 100, max: 800 }, settleMs: 10 });
}

describe('EVPN source', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    log.info.mockClear();
    log.warn.mockClear();
  });
  afterEach(() => vi.useRealTimers());

  it('announces a type-3 route per served VNI and a type-2 per local MAC and IP, and withdraws them', async () => {
    const gobgpd = new FakeGobgpd();
    const evpn = source(() => gobgpd);
    const sink = new RecordingSink();
    evpn.start(sink);
    evpn.serve([100, 200]);
    await vi.advanceTimersByTimeAsync(1);
    evpn.announceMac(100, '02:18:00:00:00:11', ['172.18.0.11']);
    await vi.advanceTimersByTimeAsync(1);
    expect(gobgpd.announced()).toEqual(
      [
        { kind: 'imet', vni: 100, vtep: '10.0.1.1', rd: '10.0.1.1:1' },
        { kind: 'imet', vni: 200, vtep: '10.0.1.1', rd: '10.0.1.1:2' },
        { kind: 'macip', vni: 100, vtep: '10.0.1.1', rd: '10.0.1.1:1', mac: '02:18:00:00:00:11', ip: undefined, seq: 0 },
        { kind: 'macip', vni: 100, vtep: '10.0.1.1', rd: '10.0.1.1:1', mac: '02:18:00:00:00:11', ip: '172.18.0.11', seq: 0 },
      ].map((r) => JSON.stringify(r)).sort(),
    );
    evpn.withdrawMac(100, '02:18:00:00:00:11');
    sink.states.delete(200);
    evpn.serve([100]);
    expect(sink.states.get(200)).toEqual({ members: new Set(), macs: new Map() }); // the sink forgets VNI 200
    await vi.advanceTimersByTimeAsync(1);
    expect(gobgpd.announced()).toEqual([JSON.stringify({ kind: 'imet', vni: 100, vtep: '10.0.1.1', rd: '10.0.1.1:1' })]);
    await evpn.stop();
    expect(gobgpd.announced()).toEqual([]);
    expect(gobgpd.closed).toBe(true);
  });

  it('imports other VTEPs as members and their MACs, ignores its own routes and VNIs it does not serve', async () => {
    const gobgpd = new FakeGobgpd();
    gobgpd.listing = [
      fromPeer(inclusiveMulticastPath(codec, host2, 100, 1)),
      fromPeer(inclusiveMulticastPath(codec, host2, 300, 2)),
      inclusiveMulticastPath(codec, me, 100, 1), // our own, as gobgpd lists it
      fromPeer(inclusiveMulticastPath(codec, me, 100, 1), '10.0.1.9'), // our own, reflected back
    ];
    const sink = new RecordingSink();
    const evpn = source(() => gobgpd);
    evpn.start(sink);
    evpn.serve([100]);
    await vi.advanceTimersByTimeAsync(20);
    expect([...(sink.states.get(100)?.members ?? [])]).toEqual(['10.0.1.2']);
    expect(sink.states.has(300)).toBe(false);

    gobgpd.push(fromPeer(macIpPath(codec, host2, 100, 1, '02:18:00:00:00:22', undefined, 0)), fromPeer(macIpPath(codec, host2, 100, 1, '02:18:00:00:00:22', '172.18.0.22', 0)));
    await vi.advanceTimersByTimeAsync(20);
    expect(sink.states.get(100)?.macs.get('02:18:00:00:00:22')).toEqual({ mac: '02:18:00:00:00:22', vtep: '10.0.1.2', ips: ['172.18.0.22'], seq: 0 });

    gobgpd.push(withdrawn(fromPeer(inclusiveMulticastPath(codec, host2, 100, 1))));
    await vi.advanceTimersByTimeAsync(20);
    expect(sink.states.get(100)?.members.size).toBe(0);
    expect(evpn.status()).toMatchObject({ origin: 'evpn', up: true, lastError: undefined });
  });

  it('settles a MAC behind two VTEPs by MAC mobility sequence number, counts the move, and beats it when the MAC shows up here', async () => {
    const gobgpd = new FakeGobgpd();
    const sink = new RecordingSink();
    const evpn = source(() => gobgpd);
    evpn.start(sink);
    evpn.serve([100]);
    await vi.advanceTimersByTimeAsync(1);
    const mac = '02:18:00:00:00:33';
    gobgpd.push(fromPeer(macIpPath(codec, host3, 100, 1, mac, undefined, 0), '10.0.1.3'));
    await vi.advanceTimersByTimeAsync(20);
    expect(sink.states.get(100)?.macs.get(mac)?.vtep).toBe('10.0.1.3');
    // It moved to host 2, which announces it with sequence 1; host 3's route is not withdrawn yet.
    gobgpd.push(fromPeer(macIpPath(codec, host2, 100, 1, mac, undefined, 1)));
    await vi.advanceTimersByTimeAsync(20);
    expect(sink.states.get(100)?.macs.get(mac)).toMatchObject({ vtep: '10.0.1.2', seq: 1 });
    expect(evpn.counters.macMoves).toBe(1);
    // Equal sequence numbers: the lower VTEP address wins (RFC 7432 section 15.1).
    gobgpd.push(fromPeer(macIpPath(codec, host3, 100, 1, mac, undefined, 1), '10.0.1.3'));
    await vi.advanceTimersByTimeAsync(20);
    expect(sink.states.get(100)?.macs.get(mac)?.vtep).toBe('10.0.1.2');
    // Now it appears behind this host's TAP: announced with sequence 2.
    evpn.announceMac(100, mac, []);
    await vi.advanceTimersByTimeAsync(1);
    expect(gobgpd.announced()).toContain(JSON.stringify({ kind: 'macip', vni: 100, vtep: '10.0.1.1', rd: '10.0.1.1:1', mac, ip: undefined, seq: 2 }));
  });

  it('stops announcing a local MAC that another VTEP took over with a higher sequence number, and says so (onMacLost)', async () => {
    const gobgpd = new FakeGobgpd();
    const evpn = source(() => gobgpd);
    const lost: string[] = [];
    evpn.onMacLost = (vni, mac) => lost.push(`${vni} ${mac}`);
    evpn.start(new RecordingSink());
    evpn.serve([100]);
    await vi.advanceTimersByTimeAsync(1);
    const mac = '02:18:00:00:00:44';
    evpn.announceMac(100, mac, []);
    await vi.advanceTimersByTimeAsync(1);
    expect(gobgpd.announced()).toContain(JSON.stringify({ kind: 'macip', vni: 100, vtep: '10.0.1.1', rd: '10.0.1.1:1', mac, ip: undefined, seq: 0 }));
    // The container moved to host 2, which beats our sequence number.
    gobgpd.push(fromPeer(macIpPath(codec, host2, 100, 1, mac, undefined, 1)));
    await vi.advanceTimersByTimeAsync(20);
    expect(lost).toEqual([`100 ${mac}`]);
    expect(gobgpd.announced().filter((r) => r.includes(mac))).toEqual([]);
    await evpn.stop();
  });

  it('keeps the last state while gobgpd is away, logs the outage once, retries with backoff, re-announces and resynchronises', async () => {
    const first = new FakeGobgpd();
    first.listing = [fromPeer(inclusiveMulticastPath(codec, host2, 100, 1)), fromPeer(inclusiveMulticastPath(codec, host3, 100, 1), '10.0.1.3')];
    const attempts: FakeGobgpd[] = [];
    let down = false;
    const sink = new RecordingSink();
    const evpn = source(() => {
      if (attempts.length === 0) {
        attempts.push(first);
        return first;
      }
      const next = new FakeGobgpd();
      next.unreachable = down;
      next.listing = [fromPeer(inclusiveMulticastPath(codec, host2, 100, 1))]; // host 3 left meanwhile
      attempts.push(next);
      return next;
    });
    evpn.start(sink);
    evpn.serve([100]);
    evpn.announceMac(100, '02:18:00:00:00:11', []);
    await vi.advanceTimersByTimeAsync(20);
    expect(sink.states.get(100)?.members.size).toBe(2);

    down = true;
    first.die();
    await vi.advanceTimersByTimeAsync(100 + 200 + 400 + 50); // three failed attempts
    expect(attempts.length).toBe(4);
    expect(evpn.status()).toMatchObject({ up: false, lastError: 'No connection established' });
    expect(sink.states.get(100)?.members.size).toBe(2); // the last state stays applied
    expect(log.warn).toHaveBeenCalledTimes(1);
    expect(log.warn.mock.calls[0][1]).toMatch(/gobgpd at 127\.0\.0\.1:50051 lost: Connection dropped; forwarding with the last state, retrying/);

    down = false;
    await vi.advanceTimersByTimeAsync(800 + 50);
    const back = attempts[attempts.length - 1];
    expect(back.unreachable).toBe(false);
    expect(evpn.status()).toMatchObject({ up: true });
    expect(evpn.status().watchRestarts).toBeGreaterThanOrEqual(4);
    expect(back.announced().length).toBe(2); // type 3 and the MAC, announced again
    expect([...(sink.states.get(100)?.members ?? [])]).toEqual(['10.0.1.2']);
    expect(log.info.mock.calls.at(-1)?.[1]).toMatch(/gobgpd at 127\.0\.0\.1:50051 is back/);
    await evpn.stop();
  });

  it("deletes this host's paths that gobgpd still has from an earlier run, and keeps the others'", async () => {
    const gobgpd = new FakeGobgpd();
    const stale = macIpPath(codec, me, 100, 1, '02:18:00:00:00:99', undefined, 0);
    gobgpd.listing = [inclusiveMulticastPath(codec, me, 100, 1), stale, fromPeer(macIpPath(codec, host2, 100, 1, '02:18:00:00:00:22', undefined, 0))];
    const evpn = source(() => gobgpd);
    evpn.serve([100]);
    evpn.start(new RecordingSink());
    await vi.advanceTimersByTimeAsync(20);
    expect(gobgpd.deleted.map((p) => decodePath(codec, p))).toEqual([
      { kind: 'macip', vni: 100, vtep: '10.0.1.1', rd: '10.0.1.1:1', mac: '02:18:00:00:00:99', ip: undefined, seq: 0 },
    ]);
    await evpn.stop();
  });

  it('says where gobgpd comes from when it was never reachable', async () => {
    const evpn = source(() => Object.assign(new FakeGobgpd(), { unreachable: true }));
    evpn.start(new RecordingSink());
    await vi.advanceTimersByTimeAsync(5);
    expect(log.warn.mock.calls[0][1]).toMatch(/unreachable: No connection established \(is gobgpd running\? Debian: apt-get install gobgpd/);
    expect(evpn.status().up).toBe(false);
    await evpn.stop();
  });

  it('counts routes it cannot use and bounds how many it imports', async () => {
    const gobgpd = new FakeGobgpd();
    const evpn = new EvpnSource({ codec, connect: () => gobgpd, api: 'x', originator: me, log, settleMs: 1, maxRoutes: 2 });
    evpn.start(new RecordingSink());
    evpn.serve([100]);
    await vi.advanceTimersByTimeAsync(1);
    const bad = fromPeer(macIpPath(codec, host2, 100, 1, '02:00:00:00:00:01', undefined, 0));
    bad.pattrs = [];
    gobgpd.push(bad);
    for (let i = 0; i < 5; i++) gobgpd.push(fromPeer(macIpPath(codec, host2, 100, 1, `02:00:00:00:01:0${i}`, undefined, 0)));
    expect(evpn.status().skipped).toEqual({ no_next_hop: 1, over_limit: 3 });
    await evpn.stop();
  });
});
