// Prometheus metrics and the health check, served over HTTP by --metrics.
//
// The hot path only bumps plain numbers (NetworkCounters, RemoteCounters,
// EngineCounters). The collectors here read them when Prometheus scrapes:
// each is a prom-client Counter or Gauge whose collect() resets it and copies
// the current values in, so series of a VNI or peer that went away disappear
// and nothing is ever incremented per packet. The registry is our own, never
// prom-client's global one.

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { EngineDrops, NetworkDrops, NetworkFaults, type EngineCounters, type EngineDropReason, type NetworkCounters, type NetworkDropReason, type NetworkFault } from './core/counters';
import type { Network } from './core/network';
import { RemoteCounters, type Remote } from './core/remotes';
import { controlPlaneHealth, registerControlPlaneMetrics, type ControlPlaneHealth } from './control-plane/metrics';
import type { ControlPlaneStatus } from './control-plane/source';
import { formatListenAddress, parseListenAddress, type ListenAddress } from './core/listen-address';
import { counterFrom, gaugeFrom, type Labels } from './scrape-time-metrics';
import { ListenError, startHttpServer, type HttpServer, type Reply } from './metrics-http';
import { getLink } from './io/link';

/** What the collectors read: the daemon (or a test's stand-in). */
export interface MetricsSource {
  readonly engine: { readonly counters: EngineCounters; allNetworks(): Network[] };
  readonly remotes: { all(): Remote[]; readonly retiredLearned: RemoteCounters };
  /** The fleet control plane (--etcd or --evpn), if any. */
  readonly controlPlane?: { status(): ControlPlaneStatus };
}

/** What the health check looks at: the daemon (or a test's stand-in). */
export interface HealthSource {
  /** The daemon runs and its UDP socket is open. */
  isUp(): boolean;
  /** The networks in service and their TAPs. */
  networks(): { vni: number; tap: string }[];
  readonly controlPlane?: { status(): ControlPlaneStatus };
}


interface NetworkMetric {
  name: string;
  help: string;
  read: (counters: NetworkCounters) => number;
}

/** Per-VNI counters (label vni), in the order they appear on /metrics. */
const NETWORK_COUNTERS: NetworkMetric[] = [
  {
    name: 'tsvtep_overlay_received_frames_total',
    help: 'Frames received from the overlay and written to the TAP.',
    read: (c) => c.rxFrames,
  },
  {
    name: 'tsvtep_overlay_received_bytes_total',
    help: 'Bytes of the inner Ethernet frames received from the overlay and written to the TAP.',
    read: (c) => c.rxBytes,
  },
  {
    name: 'tsvtep_overlay_sent_frames_total',
    help: 'Frames read from the TAP and sent to the overlay, as they go on the wire (once per TSO segment or IPv4 fragment; a flooded frame counts once).',
    read: (c) => c.txFrames,
  },
  {
    name: 'tsvtep_overlay_sent_bytes_total',
    help: 'Bytes of the inner Ethernet frames read from the TAP and sent to the overlay.',
    read: (c) => c.txBytes,
  },
  {
    name: 'tsvtep_overlay_sent_datagrams_total',
    help: 'VXLAN datagrams sent to the overlay (a flooded frame counts once per peer).',
    read: (c) => c.txDatagrams,
  },
  {
    name: 'tsvtep_flooded_frames_total',
    help: 'Broadcast, multicast and unknown-unicast frames sent to every peer.',
    read: (c) => c.floodedFrames,
  },
  {
    name: 'tsvtep_icmp_too_big_total',
    help: 'Frames too big for the path, answered with ICMP "fragmentation needed" or ICMPv6 "packet too big".',
    read: (c) => c.icmpTooBig,
  },
  {
    name: 'tsvtep_fragmented_frames_total',
    help: 'IPv4 packets without DF too big for the path, split into fragments that fit.',
    read: (c) => c.fragmentedFrames,
  },
  {
    name: 'tsvtep_fdb_learned_total',
    help: 'MAC addresses learned into the FDB.',
    read: (c) => c.fdbLearned,
  },
  {
    name: 'tsvtep_fdb_moved_total',
    help: 'Learned MAC addresses seen behind a different remote and moved there.',
    read: (c) => c.fdbMoved,
  },
  {
    name: 'tsvtep_fdb_static_kept_total',
    help: 'Frames whose source MAC has a static entry behind another remote: the entry is kept, not moved.',
    read: (c) => c.fdbStaticKept,
  },
  {
    name: 'tsvtep_fdb_aged_out_total',
    help: 'Learned MAC addresses forgotten after the ageing time.',
    read: (c) => c.fdbAgedOut,
  },
  {
    name: 'tsvtep_fdb_move_limited_total',
    help: 'MAC moves not made because the MAC had moved less than a second before (the frame is delivered).',
    read: (c) => c.fdbMoveLimited,
  },
  {
    name: 'tsvtep_learned_remotes_aged_out_total',
    help: 'Learned remotes (--learn-remotes) forgotten: no FDB entry behind them and nothing received for the ageing time.',
    read: (c) => c.remotesAgedOut,
  },
];

/** Every field of NetworkDrops, so a reason added there shows up here. */
export const NETWORK_DROP_REASONS = Object.keys(new NetworkDrops()) as NetworkDropReason[];

/** Every field of NetworkFaults. */
export const NETWORK_FAULTS = Object.keys(new NetworkFaults()) as NetworkFault[];

/** Every field of EngineDrops: drops before a datagram can be tied to a VNI. */
const ENGINE_DROP_REASONS = Object.keys(new EngineDrops()) as EngineDropReason[];

/** Per-peer counters (label peer). */
const PEER_COUNTERS: { name: string; help: string; read: (c: RemoteCounters) => number }[] = [
  {
    name: 'tsvtep_peer_received_datagrams_total',
    help: 'VXLAN datagrams accepted from the peer.',
    read: (c) => c.rxDatagrams,
  },
  {
    name: 'tsvtep_peer_received_bytes_total',
    help: 'Bytes of the VXLAN datagrams (UDP payload) accepted from the peer.',
    read: (c) => c.rxBytes,
  },
  {
    name: 'tsvtep_peer_sent_datagrams_total',
    help: 'VXLAN datagrams sent to the peer.',
    read: (c) => c.txDatagrams,
  },
  {
    name: 'tsvtep_peer_sent_bytes_total',
    help: 'Bytes of the VXLAN datagrams (UDP payload) sent to the peer.',
    read: (c) => c.txBytes,
  },
];

/**
 * prom-client's default metrics that promtool rejects: gauges named *_total
 * (they are the sums of nodejs_active_handles, _requests and _resources,
 * which stay).
 */
const DEFAULT_METRICS_LEFT_OUT = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** A registry of our own with tsvtep's metrics, reading source at scrape time. */
export function createMetricsRegistry(source: MetricsSource, options: { defaultMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  const networks = (): Network[] => source.engine.allNetworks();
  const vniLabel = (network: Network): Labels => ({ vni: String(network.vni) });

  new Gauge({
    name: 'tsvtep_build_info',
    help: 'Always 1; the labels say which tsvtep and Node.js are running.',
    labelNames: ['version', 'nodejs_version'],
    registers: [registry],
  }).set({ version: packageVersion(), nodejs_version: process.versions.node }, 1);

  for (const metric of NETWORK_COUNTERS) {
    counterFrom(registry, metric.name, metric.help, ['vni'], (emit) => {
      for (const network of networks()) emit(vniLabel(network), metric.read(network.counters));
    });
  }
  counterFrom(
    registry,
    'tsvtep_drops_total',
    'Frames and datagrams of a VNI dropped, by reason (fdb_full: source MAC not learned; the frame itself is delivered).',
    ['vni', 'reason'],
    (emit) => {
      for (const network of networks()) {
        for (const reason of NETWORK_DROP_REASONS) emit({ vni: String(network.vni), reason }, network.counters.drops[reason]);
      }
    },
  );
  counterFrom(
    registry,
    'tsvtep_faults_total',
    'Faults noticed on a VNI, once per episode, by kind (bridge_lost: the TAP found off its bridge; send_failing: UDP sends started failing; tap_write_failing: TAP writes started failing).',
    ['vni', 'fault'],
    (emit) => {
      for (const network of networks()) {
        for (const fault of NETWORK_FAULTS) emit({ vni: String(network.vni), fault }, network.counters.faults[fault]);
      }
    },
  );
  gaugeFrom(registry, 'tsvtep_fdb_entries', 'MAC addresses in the FDB (learned and static).', ['vni'], (emit) => {
    for (const network of networks()) emit(vniLabel(network), network.fdb.size);
  });
  gaugeFrom(registry, 'tsvtep_fdb_max_entries', 'Size limit of the FDB (--max-addresses).', ['vni'], (emit) => {
    for (const network of networks()) emit(vniLabel(network), network.fdb.maxEntries);
  });

  counterFrom(registry, 'tsvtep_received_datagrams_total', 'Datagrams read from the UDP socket, of every VNI, before any check.', [], (emit) =>
    emit({}, source.engine.counters.rxDatagrams),
  );
  counterFrom(
    registry,
    'tsvtep_datagram_drops_total',
    'Datagrams dropped before they could be tied to a VNI, by reason (bad_header: too short or I flag not set; unknown_vni: no network here serves the VNI).',
    ['reason'],
    (emit) => {
      for (const reason of ENGINE_DROP_REASONS) emit({ reason }, source.engine.counters.drops[reason]);
    },
  );

  gaugeFrom(registry, 'tsvtep_learned_remotes', 'Remotes accepted with --learn-remotes that are not peers of the VNI.', ['vni'], (emit) => {
    for (const network of networks()) emit(vniLabel(network), network.learnedRemotes.size);
  });
  gaugeFrom(registry, 'tsvtep_learned_remotes_max', 'Limit of learned remotes per VNI (--max-remotes).', ['vni'], (emit) => {
    for (const network of networks()) emit(vniLabel(network), network.learnedRemotes.limit);
  });

  // One series per configured peer; learned remotes, however many senders there were, share peer="learned".
  for (const metric of PEER_COUNTERS) {
    counterFrom(registry, metric.name, metric.help, ['peer'], (emit) => {
      const learned = new RemoteCounters();
      let anyLearned = false;
      for (const remote of source.remotes.all()) {
        if (!remote.learned) {
          emit({ peer: remote.address }, metric.read(remote.counters));
          continue;
        }
        anyLearned = true;
        learned.rxDatagrams += remote.counters.rxDatagrams;
        learned.rxBytes += remote.counters.rxBytes;
        learned.txDatagrams += remote.counters.txDatagrams;
        learned.txBytes += remote.counters.txBytes;
      }
      const retired = source.remotes.retiredLearned;
      const everLearned = anyLearned || retired.rxDatagrams > 0 || retired.txDatagrams > 0;
      if (everLearned) emit({ peer: 'learned' }, metric.read(learned) + metric.read(retired));
    });
  }

  counterFrom(registry, 'tsvtep_arp_suppressed_total', 'ARP requests answered here from control-plane bindings instead of flooded (--suppress-arp).', ['vni'], (emit) => {
    for (const network of networks()) {
      const counters = network.tapObserver?.suppressor?.counters;
      if (counters) emit(vniLabel(network), counters.arpSuppressed);
    }
  });
  counterFrom(registry, 'tsvtep_nd_suppressed_total', 'IPv6 neighbour solicitations answered here from control-plane bindings instead of flooded (--suppress-arp).', ['vni'], (emit) => {
    for (const network of networks()) {
      const counters = network.tapObserver?.suppressor?.counters;
      if (counters) emit(vniLabel(network), counters.ndSuppressed);
    }
  });

  if (source.controlPlane) registerControlPlaneMetrics(registry, source.controlPlane);

  if (options.defaultMetrics ?? true) {
    collectDefaultMetrics({ register: registry });
    for (const name of DEFAULT_METRICS_LEFT_OUT) registry.removeSingleMetric(name);
  }
  return registry;
}

export interface TapHealth {
  vni: number;
  tap: string;
  up: boolean;
  /** UP; DOWN (set down); NO-CARRIER (up, but nobody holds the TAP open); ABSENT; ERROR (ip failed). */
  state: string;
}

export interface Health {
  status: 'up' | 'down';
  socket: boolean;
  taps: TapHealth[];
  /** The control plane's state; its being down does not make the daemon down (forwarding goes on with the last state). */
  controlPlane?: ControlPlaneHealth;
}

/** The state of a link as TapHealth.state spells it. */
export type LinkState = (name: string) => Promise<string>;

/**
 * From the link's flags, not its operstate: the kernel reports a working TAP
 * as operstate UNKNOWN, so UP and LOWER_UP (carrier: our descriptor is open)
 * are what say it works.
 */
async function kernelLinkState(name: string): Promise<string> {
  try {
    const link = await getLink(name);
    if (!link) return 'ABSENT';
    const flags = link.flags ?? [];
    if (!flags.includes('UP')) return 'DOWN';
    return flags.includes('LOWER_UP') ? 'UP' : 'NO-CARRIER';
  } catch {
    return 'ERROR';
  }
}

/** Up when the socket is open and every TAP is there and up. */
export async function checkHealth(source: HealthSource, linkState: LinkState = kernelLinkState): Promise<Health> {
  const taps = await Promise.all(
    source.networks().map(async ({ vni, tap }): Promise<TapHealth> => {
      const state = await linkState(tap);
      return { vni, tap, up: state === 'UP', state };
    }),
  );
  const socket = source.isUp();
  const up = socket && taps.length > 0 && taps.every((t) => t.up);
  const health: Health = { status: up ? 'up' : 'down', socket, taps };
  if (source.controlPlane) health.controlPlane = controlPlaneHealth(source.controlPlane);
  return health;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * /metrics and /healthz on one address. It listens before the daemon starts,
 * so a taken port fails before any TAP exists, and answers 503 until serve()
 * hands it the daemon. It never keeps the process alive by itself.
 */
export class MetricsServer {
  private registry: Registry | undefined;
  private source: (MetricsSource & HealthSource) | undefined;
  private pendingHealth: Promise<Health> | undefined;
  private http: HttpServer | undefined;

  private constructor(private readonly log: Logger) {}

  /** Listens on address ('127.0.0.1:9477', '[::1]:9477'); throws ListenError (see metrics-http.ts) if it cannot. */
  static async start(address: ListenAddress | string, log: Logger): Promise<MetricsServer> {
    if (typeof address === 'string') {
      const parsed = parseListenAddress(address);
      if (typeof parsed === 'string') throw new ListenError(`--metrics ${parsed}`);
      address = parsed;
    }
    if (isWildcard(address.host)) {
      // Allowed (it is the exporter convention), but say once what it means.
      log.warn(
        { address: address.host, port: address.port },
        `metrics on ${formatListenAddress(address)}: every address of this host, reachable from other hosts and unauthenticated (bind a loopback or management address to keep it local)`,
      );
    }
    const server = new MetricsServer(log);
    server.http = await startHttpServer(
      address,
      {
        '/metrics': () => server.metrics(),
        '/healthz': () => server.health(),
      },
      (error) => log.warn({ err: error }, `metrics endpoint: ${error instanceof Error ? error.message : String(error)}`),
    );
    return server;
  }

  /** Starts answering from source (the running daemon). */
  serve(source: MetricsSource & HealthSource): void {
    this.source = source;
    this.registry = createMetricsRegistry(source);
    if (this.http) {
      const { host, port } = this.http.address;
      const where = formatListenAddress(this.http.address);
      this.log.info({ address: host, port }, `metrics on http://${where}/metrics, health on http://${where}/healthz`);
    }
  }

  close(): void {
    this.http?.close();
    this.http = undefined;
  }

  private async metrics(): Promise<Reply> {
    if (!this.registry) return { status: 503, contentType: 'text/plain; charset=utf-8', body: 'starting\n' };
    return { status: 200, contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private async health(): Promise<Reply> {
    const source = this.source;
    if (!source) return { status: 503, contentType: JSON_TYPE, body: `${JSON.stringify({ status: 'starting' })}\n` };
    // Concurrent requests share one check (each runs `ip link show` per TAP).
    this.pendingHealth ??= checkHealth(source).finally(() => (this.pendingHealth = undefined));
    const result = await this.pendingHealth;
    return { status: result.status === 'up' ? 200 : 503, contentType: JSON_TYPE, body: `${JSON.stringify(result)}\n` };
  }
}

/** 0.0.0.0 or :: (in any spelling): listening on every address. */
function isWildcard(host: string): boolean {
  return /^0+(\.0+){3}$/.test(host) || /^[0:]+$/.test(host);
}

let version: string | undefined;

/** tsvtep's version from package.json (found from src/ and from dist/src/). */
function packageVersion(): string {
  if (version !== undefined) return version;
  version = 'unknown';
  for (const dir of [path.resolve(__dirname, '..'), path.resolve(__dirname, '..', '..')]) {
    const file = path.join(dir, 'package.json');
    if (!existsSync(file)) continue;
    try {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'tsvtep' && typeof pkg.version === 'string') {
        version = pkg.version;
        break;
      }
    } catch {
      // not ours or unreadable; try the next
    }
  }
  return version;
}
