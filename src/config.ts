// The daemon's configuration, validated as a whole before anything is
// touched. Command-line flags are turned into this shape too, so every entry
// point gets the same checks and the same messages.

import { isIP } from 'node:net';
import { z } from 'zod';
import { ConfigError } from './config-error';
import { canonicalAddress } from './core/address';
import { parseMac } from './core/ethernet';
import { peerAddressProblem } from './core/peer-address';
import { DEFAULT_AGEING_MS, DEFAULT_MAX_ENTRIES } from './core/fdb';
import { DEFAULT_MAX_REMOTES } from './core/learned-remotes';
import { DEFAULT_FLOOD_RATE } from './core/rate-limit';
import { VNI_MAX, VXLAN_PORT } from './core/vxlan';
import { parseListenAddress } from './core/listen-address';

const IFNAME = /^[A-Za-z0-9_.:-]{1,15}$/;
/** What `docker network create` accepts as a name (and network IDs). */
const DOCKER_NETWORK = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;

const ipAddress = z.string().refine((s) => isIP(s) !== 0, { error: (issue) => `${String(issue.input)} is not an IPv4 or IPv6 address` });
/** A unicast address of another host (see core/peer-address.ts). */
const peerAddress = z.string().superRefine((s, ctx) => {
  const problem = peerAddressProblem(s);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `${s} ${problem}` });
});
const ifName = z.string().regex(IFNAME, { message: 'not an interface name (1-15 letters, digits, _ . : -)' });

const macAddress = z
  .string()
  .refine((s) => parseMac(s) !== null, { error: (issue) => `${String(issue.input)} is not a MAC address (aa:bb:cc:dd:ee:ff)` });

export const staticEntrySchema = z.strictObject({
  mac: macAddress,
  /** Underlay address of the remote the MAC lives behind; must be a peer of the network. */
  remote: ipAddress,
});

export const networkSchema = z.strictObject({
  vni: z
    .number({ message: 'must be a number' })
    .int({ message: 'must be a whole number' })
    .min(0, { error: (issue) => `${String(issue.input)} is out of range (0 to ${VNI_MAX})` })
    .max(VNI_MAX, { error: (issue) => `${String(issue.input)} is out of range (0 to ${VNI_MAX})` }),
  /** The bridge to attach the TAP to: a Linux or an Open vSwitch bridge. Give this or dockerNetwork. */
  bridge: ifName.optional(),
  /** A Docker bridge network, by name or ID; its bridge is asked of the Docker Engine at start-up. */
  dockerNetwork: z.string().regex(DOCKER_NETWORK, { message: 'not a Docker network name (letters, digits, _ . -)' }).optional(),
  tap: ifName.optional(),
  /** Static peers; with a control plane (etcd, evpn), its members are added to these. */
  peers: z.array(peerAddress).default([]),
  /**
   * Overlay MTU: the largest inner IP packet sent as one datagram; larger ones
   * get ICMP "too big" or are fragmented. Default: the MTU of the route to the
   * peers minus 50 (IPv4 underlay) or 70 (IPv6). The TAP's own MTU is not
   * this: it follows the bridge and its ports, so big frames reach us.
   */
  mtu: z.number().int().min(576).max(65_000).optional(),
  ageingSeconds: z.number().positive().max(1_000_000).default(DEFAULT_AGEING_MS / 1000),
  maxAddresses: z.number().int().min(1).max(1_000_000).default(DEFAULT_MAX_ENTRIES),
  /** With learnRemotes: senders that are not peers accepted at most (more are dropped as remotes_full). */
  maxRemotes: z.number().int().min(1).max(1_000_000).default(DEFAULT_MAX_REMOTES),
  /**
   * Broadcast, multicast and unknown-unicast frames flooded to the peers per
   * second at most, on average (a token bucket); more are dropped and counted
   * as flood_limited. 0: no limit.
   */
  floodRate: z.number().int().min(0).max(100_000_000).default(DEFAULT_FLOOD_RATE),
  /** Frames that may be flooded at once after a quiet spell; default: one second's worth (floodRate). */
  floodBurst: z.number().int().min(1).max(100_000_000).optional(),
  /** FDB entries that never age and never move. */
  static: z.array(staticEntrySchema).default([]),
});

/** An etcd client URL: http://10.0.1.1:2379 or https://etcd.example:2379. */
const etcdEndpoint = z.string().refine(
  (s) => {
    try {
      const url = new URL(s);
      return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '' && (url.pathname === '/' || url.pathname === '') && !url.search;
    } catch {
      return false;
    }
  },
  { error: (issue) => `${String(issue.input)} is not an etcd URL (http://ADDRESS:2379 or https://HOST:2379)` },
);

export const etcdSchema = z
  .strictObject({
    endpoints: z.array(etcdEndpoint).min(1, { message: 'needs at least one endpoint (--etcd http://ADDRESS:2379)' }),
    /** Every key tsvtep reads or writes starts with this. */
    prefix: z
      .string()
      .regex(/^\/[\x21-\x7e]{0,200}$/, { message: 'must start with / and be printable ASCII without spaces' })
      .transform((p) => (p.endsWith('/') ? p : `${p}/`))
      .default('/tsvtep/'),
    /** Lease TTL: a host that stops (or loses etcd) leaves the others' peer lists within this. */
    ttlSeconds: z.number().int().min(2, { message: 'must be at least 2' }).max(3600, { message: 'must be at most 3600' }).default(10),
    /** TLS: CA certificate file, and this host's client certificate and key files. */
    ca: z.string().min(1).optional(),
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    /** Publish the MACs (and IPs) behind our TAP, install the others' as remote entries. */
    fdb: z.boolean().default(false),
  })
  .superRefine((etcd, ctx) => {
    if ((etcd.cert === undefined) !== (etcd.key === undefined)) {
      ctx.addIssue({ code: 'custom', path: [etcd.cert === undefined ? 'cert' : 'key'], message: 'give a client certificate and its key together (--etcd-cert and --etcd-key)' });
    }
    const tls = etcd.ca !== undefined || etcd.cert !== undefined;
    etcd.endpoints.forEach((endpoint, i) => {
      const https = endpoint.startsWith('https:');
      if (tls && !https) ctx.addIssue({ code: 'custom', path: ['endpoints', i], message: `${endpoint}: TLS options need https:// endpoints` });
    });
  });
/** BGP EVPN through a gobgpd the user runs (src/control-plane/evpn/). */
export const evpnSchema = z.strictObject({
  /** gobgpd's gRPC API, host:port (gobgpd -api-hosts; default 127.0.0.1:50051). */
  api: z.string().regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, { message: 'not host:port (e.g. 127.0.0.1:50051)' }),
  /** The AS of the route targets ASN:VNI; gobgpd's own AS in an iBGP fabric. */
  asn: z.number().int().min(1).max(65_535).default(65_000),
  /** BGP router ID, the admin part of the RDs; default: the VTEP address (IPv4). */
  routerId: z.string().refine((s) => isIP(s) === 4, { error: (issue) => `${String(issue.input)} is not an IPv4 address` }).optional(),
});

export const configSchema = z
  .strictObject({
    port: z.number().int().min(1).max(65_535).default(VXLAN_PORT),
    local: ipAddress.optional(),
    dev: ifName.optional(),
    /** DF on outer IPv4 packets: true (set), false (unset), or 'inherit' (the inner IPv4 packet's). */
    dontFragment: z.union([z.boolean(), z.literal('inherit')]).default(false),
    learnRemotes: z.boolean().default(false),
    /** TAP offloads (TSO, checksum) with UDP GSO; off sends frame by frame. */
    offload: z.boolean().default(true),
    /** Sockets on random high ports to send from, for flow entropy (RFC 7348 section 5); 1: send from port. */
    sourcePorts: z
      .number()
      .int({ message: 'must be a whole number' })
      .min(1, { message: 'must be between 1 and 64' })
      .max(64, { message: 'must be between 1 and 64' })
      .default(8),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    /** Control socket path, or 127.0.0.1:PORT / [::1]:PORT; default: one per network namespace and port. */
    control: z.string().min(1).optional(),
    /** With a TCP control port: read its bearer token from this file instead of making one. */
    controlTokenFile: z.string().min(1).optional(),
    /** Prometheus /metrics and /healthz on ADDRESS:PORT ([::1]:9477 for IPv6); default off. */
    metrics: z
      .string()
      .refine((s) => typeof parseListenAddress(s) !== 'string', { error: (issue) => String(parseListenAddress(String(issue.input))) })
      .optional(),
    /** Flood lists and remote MACs from BGP EVPN, next to the static peers. */
    evpn: evpnSchema.optional(),
    networks: z.array(networkSchema).min(1, { message: 'no networks configured' }),
    /** The fleet's etcd: membership (peers) from there; see control-plane/etcd. */
    etcd: etcdSchema.optional(),
    /** Answer ARP requests and IPv6 neighbour solicitations for IPs the control plane knows (needs etcd.fdb or evpn). */
    suppressArp: z.boolean().default(false),
  })
  .superRefine((config, ctx) => {
    if (config.suppressArp && !config.etcd?.fdb && !config.evpn) {
      ctx.addIssue({ code: 'custom', path: ['suppressArp'], message: 'needs MAC/IP distribution (--etcd-fdb or --evpn)' });
    }
    // One control-plane source at a time: each would own the flood lists and remote MACs.
    if (config.etcd && config.evpn) {
      ctx.addIssue({ code: 'custom', path: ['evpn'], message: 'give --etcd or --evpn, not both (one control plane at a time)' });
    }
    if (config.local && config.dev) {
      ctx.addIssue({ code: 'custom', path: ['local'], message: 'give --local or --dev, not both' });
    }
    if (config.evpn && !config.local && !config.dev) {
      ctx.addIssue({ code: 'custom', path: ['evpn'], message: 'needs --local or --dev: the VTEP address EVPN announces' });
    }
    if (config.evpn && config.evpn.routerId === undefined && config.local !== undefined && isIP(config.local) !== 4) {
      ctx.addIssue({ code: 'custom', path: ['evpn', 'routerId'], message: 'needs a router ID (an IPv4 address) with an IPv6 VTEP address' });
    }
    const vnis = new Set<number>();
    const taps = new Set<string>();
    config.networks.forEach((network, i) => {
      if ((network.bridge === undefined) === (network.dockerNetwork === undefined)) {
        ctx.addIssue({
          code: 'custom',
          path: ['networks', i, 'bridge'],
          message: network.bridge === undefined ? 'give a bridge or a dockerNetwork' : 'give a bridge or a dockerNetwork, not both',
        });
      }
      if (vnis.has(network.vni)) {
        ctx.addIssue({ code: 'custom', path: ['networks', i, 'vni'], message: `VNI ${network.vni} appears twice` });
      }
      vnis.add(network.vni);
      const tap = network.tap ?? defaultTapName(network.vni);
      if (taps.has(tap)) {
        ctx.addIssue({ code: 'custom', path: ['networks', i, 'tap'], message: `TAP ${tap} is used by two networks` });
      }
      taps.add(tap);
      if (network.peers.length === 0 && config.etcd === undefined && config.evpn === undefined) {
        ctx.addIssue({ code: 'custom', path: ['networks', i, 'peers'], message: 'needs at least one peer (--peer ADDRESS), or --etcd URL or --evpn ADDR:PORT' });
      }
      const seen = new Set<string>();
      const staticMacs = new Set<string>();
      network.static.forEach((entry, j) => {
        const mac = entry.mac.toLowerCase();
        if (staticMacs.has(mac)) {
          ctx.addIssue({ code: 'custom', path: ['networks', i, 'static', j, 'mac'], message: `${entry.mac} has two static entries` });
        }
        staticMacs.add(mac);
        if (isIP(entry.remote) === 0) return;
        const remote = canonicalAddress(entry.remote);
        if (!network.peers.some((peer) => isIP(peer) !== 0 && canonicalAddress(peer) === remote)) {
          ctx.addIssue({
            code: 'custom',
            path: ['networks', i, 'static', j, 'remote'],
            message: `${entry.remote} is not a peer of VNI ${network.vni} (add it to peers)`,
          });
        }
      });
      network.peers.forEach((peer, j) => {
        if (isIP(peer) === 0) return;
        const canonical = canonicalAddress(peer);
        if (seen.has(canonical)) {
          ctx.addIssue({ code: 'custom', path: ['networks', i, 'peers', j], message: `peer ${peer} is listed twice` });
        }
        seen.add(canonical);
        if (config.local && isIP(config.local) && canonicalAddress(config.local) === canonical) {
          ctx.addIssue({ code: 'custom', path: ['networks', i, 'peers', j], message: `peer ${peer} is our own --local address` });
        }
        if (config.local && isIP(config.local) === 4 && isIP(peer) === 6) {
          ctx.addIssue({
            code: 'custom',
            path: ['networks', i, 'peers', j],
            message: `IPv6 peer ${peer} cannot be reached from IPv4 --local ${config.local}`,
          });
        }
      });
    });
  });

export type NetworkConfig = z.infer<typeof networkSchema>;
export type StaticEntry = z.infer<typeof staticEntrySchema>;
export type DaemonConfig = z.infer<typeof configSchema>;
export type EtcdConfig = z.infer<typeof etcdSchema>;
export type EvpnConfig = z.infer<typeof evpnSchema>;

/** tsv<vni>: at most 11 characters, inside the kernel's 15. */
export function defaultTapName(vni: number): string {
  return `tsv${vni}`;
}

export { ConfigError };

/** Validates input; throws ConfigError with one line per problem, naming the field. */
export function parseConfig(input: unknown, fieldNames: (path: PropertyKey[]) => string = dottedPath): DaemonConfig {
  const result = configSchema.safeParse(input);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => `${fieldNames(issue.path)}: ${issue.message}`);
  throw new ConfigError(lines.join('\n'));
}

function dottedPath(path: PropertyKey[]): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.').replace(/\.\[/g, '[');
}
