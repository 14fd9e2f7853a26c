// The local control interface: JSON over HTTP on a Unix socket (mode 0600) or
// a loopback port. It reads the daemon's state and makes runtime changes; it
// is never on the data path.
//
//   GET    /networks                     networks with MTUs, peers and counters
//   GET    /peers[?vni=N]                peers with their counters
//   GET    /fdb[?vni=N]                  FDB entries (learned and static)
//   POST   /peers    {vni, address}      add a peer
//   DELETE /peers?vni=N&address=A        remove a peer
//   POST   /fdb      {vni, mac, remote}  add a static entry
//   DELETE /fdb?vni=N&mac=M              remove an entry
//   POST   /reload                       re-read the config file (as SIGHUP)

import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection } from 'node:net';
import http from 'node:http';
import path from 'node:path';
import { z } from 'zod';
import { ChangeError, type Daemon } from '../daemon';
import { describeEndpoint, type ControlEndpoint } from './endpoint';

const MAX_BODY_BYTES = 64 * 1024;

export class ControlError extends Error {}

export interface ControlHooks {
  /** Re-reads the config file; resolves with the changes made. */
  reload?: () => Promise<string[]>;
  /** Where peers and FDB entries came from, when a control plane (--evpn) adds some; otherwise all are static or learned. */
  origins?: {
    peer(vni: number, address: string): string[];
    mac(vni: number, mac: string): string | undefined;
  };
}

const vniSchema = z.coerce.number().int().min(0).max(0xffffff);
const peerBody = z.strictObject({ vni: vniSchema, address: z.string() });
const staticBody = z.strictObject({ vni: vniSchema, mac: z.string(), remote: z.string() });

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class ControlServer {
  private constructor(
    private readonly server: http.Server,
    readonly endpoint: ControlEndpoint,
  ) {}

  static async start(daemon: Daemon, endpoint: ControlEndpoint, hooks: ControlHooks = {}): Promise<ControlServer> {
    const server = http.createServer((request, response) => {
      handle(daemon, hooks, request)
        .then((body) => reply(response, 200, body))
        .catch((error: unknown) => {
          if (error instanceof HttpError) return reply(response, error.status, { error: error.message });
          if (error instanceof ChangeError) return reply(response, error.status, { error: error.message });
          return reply(response, 500, { error: (error as Error).message });
        });
    });
    if (endpoint.kind === 'unix') await prepareSocketPath(endpoint.path);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (endpoint.kind === 'unix') server.listen(endpoint.path, resolve);
      else server.listen(endpoint.port, endpoint.host, resolve);
    }).catch((error: NodeJS.ErrnoException) => {
      const where = describeEndpoint(endpoint);
      if (error.code === 'EADDRINUSE') throw new ControlError(`control address ${where} is in use (pick another with --control)`);
      throw new ControlError(`cannot listen on control address ${where}: ${error.message}`);
    });
    if (endpoint.kind === 'unix') chmodSync(endpoint.path, 0o600);
    return new ControlServer(server, endpoint);
  }

  close(): void {
    this.server.close();
    this.server.closeAllConnections();
    if (this.endpoint.kind === 'unix') {
      try {
        unlinkSync(this.endpoint.path);
      } catch {
        // Already gone.
      }
    }
  }
}

/** Creates the directory; removes a stale socket, refuses one that answers. */
async function prepareSocketPath(socketPath: string): Promise<void> {
  mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
  if (!existsSync(socketPath)) return;
  const answers = await new Promise<boolean>((resolve) => {
    const probe = createConnection(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (answers) throw new ControlError(`another tsvtep answers on ${socketPath} (stop it, or pick another path with --control)`);
  unlinkSync(socketPath);
}

async function handle(daemon: Daemon, hooks: ControlHooks, request: http.IncomingMessage): Promise<unknown> {
  const url = new URL(request.url ?? '/', 'http://control');
  const route = `${request.method} ${url.pathname}`;
  const vniParam = url.searchParams.get('vni');
  const vni = vniParam === null ? undefined : parse(vniSchema, vniParam);
  switch (route) {
    case 'GET /networks':
      return { networks: networksView(daemon), engine: { ...daemon.engine.counters } };
    case 'GET /peers':
      return { peers: peersView(daemon, vni, hooks) };
    case 'GET /fdb':
      return {
        entries: daemon.fdbEntries(vni).map((e) => ({ ...e, source: hooks.origins?.mac(e.vni, e.mac) ?? (e.isStatic ? 'static' : 'learned') })),
      };
    case 'POST /peers': {
      const body = parse(peerBody, await readBody(request));
      return { added: daemon.addPeer(body.vni, body.address) };
    }
    case 'DELETE /peers': {
      const address = url.searchParams.get('address');
      if (vni === undefined || !address) throw new HttpError(400, 'vni and address are required');
      return { removed: daemon.removePeer(vni, address) };
    }
    case 'POST /fdb': {
      const body = parse(staticBody, await readBody(request));
      daemon.addStatic(body.vni, body.mac, body.remote);
      return { added: true };
    }
    case 'DELETE /fdb': {
      const mac = url.searchParams.get('mac');
      if (vni === undefined || !mac) throw new HttpError(400, 'vni and mac are required');
      return { removed: daemon.removeStatic(vni, mac) };
    }
    case 'POST /reload':
      if (!hooks.reload) throw new HttpError(409, 'no config file to reload (started without --config)');
      return { changes: await hooks.reload() };
    default:
      throw new HttpError(404, `no such endpoint: ${route}`);
  }
}

function networksView(daemon: Daemon): unknown[] {
  return daemon.networks().map((info) => {
    const network = daemon.network(info.vni);
    return {
      ...info,
      ageingSeconds: network ? network.fdb.ageingMs / 1000 : undefined,
      fdbEntries: network?.fdb.size ?? 0,
      fdbLimit: network?.fdb.maxEntries,
      counters: network ? { ...network.counters, drops: { ...network.counters.drops } } : undefined,
    };
  });
}

/** One row per remote, with the VNIs it is a peer of; counters cover all its VNIs. */
function peersView(daemon: Daemon, vni: number | undefined, hooks: ControlHooks): unknown[] {
  const vnisOf = new Map<number, number[]>();
  for (const info of daemon.networks()) {
    if (vni !== undefined && info.vni !== vni) continue;
    for (const id of daemon.network(info.vni)?.peers ?? []) vnisOf.set(id, [...(vnisOf.get(id) ?? []), info.vni]);
  }
  const out: unknown[] = [];
  for (const [id, vnis] of vnisOf) {
    const remote = daemon.remotes.get(id);
    const sources = [...new Set(vnis.flatMap((v) => hooks.origins?.peer(v, remote?.address ?? '') ?? ['static']))].sort();
    if (remote) out.push({ address: remote.address, vnis, sources, ...remote.counters });
  }
  return out;
}

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  throw new HttpError(400, `${issue.path.join('.') || 'value'}: ${issue.message}`);
}

async function readBody(request: http.IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'request body too large');
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'request body is not JSON');
  }
}

function reply(response: http.ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}
