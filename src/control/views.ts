// What the control interface answers, and how the CLI shows it as text. Shared
// by the control subcommands (status, peers, fdb show) and `tsvtep lab check`.

import type { EngineDropReason } from '../core/counters';

/** What the daemon knows of a network it runs. */
export interface NetworkInfo {
  vni: number;
  bridge: string;
  tap: string;
  tapMtu: number;
  /** Largest inner MTU that crosses the underlay without fragmentation. */
  overlayMtu: number;
  peers: string[];
}

/** GET /networks: what the daemon says of each network, with its FDB and counters. */
export interface NetworkView extends NetworkInfo {
  fdbEntries: number;
  fdbLimit: number;
  ageingSeconds: number;
  counters: { rxFrames: number; txFrames: number; floodedFrames: number; drops: Record<string, number> };
}

/** GET /networks, daemon-wide: datagrams received, and those dropped before they could be tied to a VNI. */
export interface EngineView {
  rxDatagrams: number;
  drops: Record<EngineDropReason, number>;
}

export interface NetworksReply {
  networks: NetworkView[];
  /** Partial: a field the daemon did not send reads as 0. */
  engine: { rxDatagrams?: number; drops?: Partial<Record<string, number>> };
}

export interface FdbView {
  vni: number;
  mac: string;
  remote: string;
  isStatic: boolean;
  ageSeconds: number;
  /** learned, static, or the control plane it came from (etcd, ...). */
  source?: string;
}

export interface PeerView {
  vnis: number[];
  /** Where the peer comes from: static (--peer, file, `peer add`), etcd, ... */
  sources: string[];
  address: string;
  /** A remote accepted with --learn-remotes, not a configured peer. */
  learned: boolean;
  rxDatagrams: number;
  rxBytes: number;
  txDatagrams: number;
  txBytes: number;
}

/** Columns padded to their widest cell. */
export function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column])).join('  ').trimEnd()).join('\n') + '\n';
}

/** `tsvtep status`: one row per network, then the engine's drops. */
export function statusText(result: NetworksReply): string {
  const rows = [['VNI', 'TAP', 'BRIDGE', 'MTU', 'OVERLAY-MTU', 'PEERS', 'FDB', 'RX', 'TX', 'FLOODED', 'DROPS']];
  for (const n of result.networks) {
    const drops = Object.values(n.counters.drops).reduce((a, b) => a + b, 0);
    rows.push([String(n.vni), n.tap, n.bridge, String(n.tapMtu), String(n.overlayMtu), n.peers.join(','), `${n.fdbEntries}/${n.fdbLimit}`,
      String(n.counters.rxFrames), String(n.counters.txFrames), String(n.counters.floodedFrames), String(drops)]);
  }
  // Drops by reason, only those that happened: the column above is their sum.
  const reasons = result.networks
    .map((n) => {
      const nonzero = Object.entries(n.counters.drops).filter(([, count]) => count > 0);
      return nonzero.length ? `VNI ${n.vni} drops: ${nonzero.map(([reason, count]) => `${reason} ${count}`).join(', ')}\n` : '';
    })
    .join('');
  const engine = `bad headers ${result.engine.drops?.bad_header ?? 0}, unknown VNI ${result.engine.drops?.unknown_vni ?? 0}\n`;
  return table(rows) + reasons + engine;
}

/** `tsvtep peers`: one row per remote; learned remotes say so. */
export function peersText(peers: PeerView[]): string {
  return table([
    ['PEER', 'KIND', 'VNIS', 'SOURCE', 'RX-DATAGRAMS', 'RX-BYTES', 'TX-DATAGRAMS', 'TX-BYTES'],
    ...peers.map((p) => [
      p.address,
      p.learned ? 'learned' : 'peer',
      p.vnis.join(','),
      p.sources.join(',') || '-',
      String(p.rxDatagrams),
      String(p.rxBytes),
      String(p.txDatagrams),
      String(p.txBytes),
    ]),
  ]);
}

/** `tsvtep fdb show`: the flood list and the MAC entries, as `bridge fdb show` prints a vxlan device's. */
export function fdbText(entries: FdbView[], networks: NetworkView[], vni?: number): string {
  const lines: string[] = [];
  for (const n of networks) {
    if (vni !== undefined && n.vni !== vni) continue;
    // The flood list, shown as the kernel shows it: all-zeros MAC entries.
    for (const p of n.peers) lines.push(`00:00:00:00:00:00 dev ${n.tap} dst ${p} vni ${n.vni} self permanent`);
    for (const e of entries.filter((x) => x.vni === n.vni)) {
      // Entries from a control plane are marked as the kernel marks them (extern_learn), with their source.
      const kind = e.source !== undefined && e.source !== 'static' && e.source !== 'learned' ? `extern_learn ${e.source}` : e.isStatic ? 'static' : `age ${e.ageSeconds}s`;
      lines.push(`${e.mac} dev ${n.tap} dst ${e.remote} vni ${e.vni} self ${kind}`);
    }
  }
  return lines.map((line) => `${line}\n`).join('');
}
