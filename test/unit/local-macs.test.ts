import { describe, expect, it, vi } from 'vitest';
import { ipsByMac, LocalMacWatch, localMacsOf, type BridgeFdbEntry, type NeighbourEntry } from '../../src/control-plane/local-macs';

// As `bridge -j fdb show br br0` prints them (iproute2 6.1).
const fdb: BridgeFdbEntry[] = [
  { mac: '33:33:00:00:00:01', ifname: 'br0', flags: ['self'], state: 'permanent' },
  { mac: '02:18:00:00:00:11', ifname: 'veth-c1', flags: [], master: 'br0', state: '' },
  { mac: '46:f9:e7:f0:81:1f', ifname: 'veth-c1', flags: [], master: 'br0', state: 'permanent' },
  { mac: '02:18:00:00:00:22', ifname: 'tsv100', flags: [], master: 'br0', state: '' },
  { mac: '01:00:5e:00:00:01', ifname: 'veth-c1', flags: [], master: 'br0', state: '' },
  { mac: '02:18:00:00:00:33', ifname: 'vxlan100', flags: ['extern_learn'], master: 'br0', state: '' },
  { mac: '02:18:00:00:00:44', ifname: 'veth-c9', flags: [], master: 'br9', state: '' },
];
const neighbours: NeighbourEntry[] = [
  { dst: '172.18.0.11', lladdr: '02:18:00:00:00:11', state: ['REACHABLE'] },
  { dst: 'fd00::11', lladdr: '02:18:00:00:00:11', state: ['STALE'] },
  { dst: '172.18.0.99', state: ['FAILED'] },
];

describe('local MACs from the bridge', () => {
  it('takes the MACs learned on the bridge ports other than the TAP, and their IPs from the neighbour table', () => {
    expect([...localMacsOf(fdb, 'br0', 'tsv100')]).toEqual(['02:18:00:00:00:11']);
    expect(ipsByMac(neighbours)).toEqual(new Map([['02:18:00:00:00:11', ['172.18.0.11', 'fd00::11']]]));
  });

  it('announces new MACs, announces again when their IPs change, withdraws aged-out ones and follows the VNIs served', async () => {
    let tables = { fdb: fdb.slice(0, 2), neighbours: [] as NeighbourEntry[] };
    let networks = [{ vni: 100, bridge: 'br0', tap: 'tsv100' }];
    const listener = { serve: vi.fn(), announceMac: vi.fn(), withdrawMac: vi.fn() };
    const watch = new LocalMacWatch({ networks: () => networks, listener, log: { warn: vi.fn() }, read: async () => tables });
    await watch.poll();
    expect(listener.serve).toHaveBeenLastCalledWith([100]);
    expect(listener.announceMac.mock.calls).toEqual([[100, '02:18:00:00:00:11', []]]);
    await watch.poll();
    expect(listener.announceMac).toHaveBeenCalledTimes(1);
    tables = { fdb: fdb.slice(0, 2), neighbours };
    await watch.poll();
    expect(listener.announceMac.mock.calls[1]).toEqual([100, '02:18:00:00:00:11', ['172.18.0.11', 'fd00::11']]);
    tables = { fdb: fdb.slice(0, 1), neighbours };
    await watch.poll();
    expect(listener.withdrawMac.mock.calls).toEqual([[100, '02:18:00:00:00:11']]);
    networks = [];
    await watch.poll();
    expect(listener.serve).toHaveBeenLastCalledWith([]);
  });

  it('says once that a bridge cannot be read, and keeps going', async () => {
    const warn = vi.fn();
    const listener = { serve: vi.fn(), announceMac: vi.fn(), withdrawMac: vi.fn() };
    const watch = new LocalMacWatch({
      networks: () => [{ vni: 100, bridge: 'ovsbr', tap: 'tsv100' }],
      listener,
      log: { warn },
      read: async () => {
        throw new Error('Command failed: bridge -j fdb show br ovsbr');
      },
    });
    await watch.poll();
    await watch.poll();
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][1]).toMatch(/VNI 100: cannot read the FDB of ovsbr/);
  });
});
