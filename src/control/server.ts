// The local control interface: JSON over HTTP on a Unix socket (mode 0600) or
// a loopback port, where every request needs the bearer token (auth.ts). It
// reads the daemon's state and makes runtime changes through ControlApi
// (api.ts) only; it is never on the data path. What one client may cost is
// bounded in request-limits.ts. HTTP statuses are decided here (and in auth.ts
// and request-limits.ts): a ChangeError's kind maps to 400, 404 or 409.
//
//   GET    /networks                     networks with MTUs, peers and counters
//   GET    /peers[?vni=N]                peers and learned remotes with their counters
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
import { ChangeError, type ChangeErrorKind, type ControlApi } from './api';
import { ControlAuth, TokenError } from './auth';
import { describeEndpoint, type ControlEndpoint } from './endpoint';
import { CONTROL_SERVER_OPTIONS, RequestError, limitServer, readJsonBody } from './request-limits';

export class ControlError extends Error {}

export interface ControlHooks {
  /** Re-reads the config file; resolves with the changes made. */
  reload?: () => Promise<string[]>;
}

/** How a TCP endpoint is guarded (see auth.ts); a Unix socket needs none of it. */
export interface ControlAuthOptions {
  /** Read the bearer token from here instead of making one. */
  tokenFile?: string;
  /** Called for the first request refused for a missing or wrong token (later ones are only counted). */
  onUnauthorized?: (method: string, path: string) => void;
}

const vniSchema = z.coerce.number().int().min(0).max(0xffffff);
const peerBody = z.strictObject({ vni: vniSchema, address: z.string() });
const staticBody = z.strictObject({ vni: vniSchema, mac: z.string(), remote: z.string() });

const STATUS_OF: Record<ChangeErrorKind, number> = { invalid: 400, 'not-found': 404, conflict: 409 };

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
    /** The token check of a TCP endpoint. */
    readonly auth: ControlAuth | undefined,
  ) {}

  static async start(api: ControlApi, endpoint: ControlEndpoint, hooks: ControlHooks = {}, authOptions: ControlAuthOptions = {}): Promise<ControlServer> {
    let auth: ControlAuth | undefined;
    try {
      auth = endpoint.kind === 'tcp' ? ControlAuth.open(endpoint, authOptions.tokenFile, (r) => authOptions.onUnauthorized?.(r.method ?? '?', r.url ?? '?')) : undefined;
    } catch (error) {
      if (error instanceof TokenError) throw new ControlError(error.message);
      throw error;
    }
    const server = http.createServer(CONTROL_SERVER_OPTIONS, (request, response) => {
      if (auth !== undefined && !auth.admit(request, response)) return;
      handle(api, hooks, request, auth)
        .then((body) => reply(response, 200, body))
        .catch((error: unknown) => {
          if (error instanceof HttpError) return reply(response, error.status, { error: error.message });
          if (error instanceof RequestError) {
            if (error.closeConnection) response.setHeader('connection', 'close');
            return reply(response, error.status, { error: error.message });
          }
          if (error instanceof ChangeError) return reply(response, STATUS_OF[error.kind], { error: error.message });
          return reply(response, 500, { error: (error as Error).message });
        });
    });
    limitServer(server);
    if (endpoint.kind === 'unix') await prepareSocketPath(endpoint.path);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (endpoint.kind === 'unix') server.listen(endpoint.path, resolve);
      else server.listen(endpoint.port, endpoint.host, resolve);
    }).catch((error: NodeJS.ErrnoException) => {
      auth?.close();
      const where = describeEndpoint(endpoint);
      if (error.code === 'EADDRINUSE') throw new ControlError(`control address ${where} is in use (pick another with --control)`);
      throw new ControlError(`cannot listen on control address ${where}: ${error.message}`);
    });
    if (endpoint.kind === 'unix') chmodSync(endpoint.path, 0o600);
    return new ControlServer(server, endpoint, auth);
  }

  close(): void {
    this.auth?.close();
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

async function handle(api: ControlApi, hooks: ControlHooks, request: http.IncomingMessage, auth: ControlAuth | undefined): Promise<unknown> {
  const url = new URL(request.url ?? '/', 'http://control');
  const route = `${request.method} ${url.pathname}`;
  const vniParam = url.searchParams.get('vni');
  const vni = vniParam === null ? undefined : parse(vniSchema, vniParam);
  switch (route) {
    case 'GET /networks':
      return { networks: api.networkViews(), engine: api.engineCounters(), control: { unauthorized: auth?.unauthorized ?? 0 } };
    case 'GET /peers':
      return { peers: api.peerViews(vni) };
    case 'GET /fdb':
      return { entries: api.fdbViews(vni) };
    case 'POST /peers': {
      const body = parse(peerBody, await readBody(request));
      return { added: api.addPeer(body.vni, body.address) };
    }
    case 'DELETE /peers': {
      const address = url.searchParams.get('address');
      if (vni === undefined || !address) throw new HttpError(400, 'vni and address are required');
      return { removed: api.removePeer(vni, address) };
    }
    case 'POST /fdb': {
      const body = parse(staticBody, await readBody(request));
      api.addStatic(body.vni, body.mac, body.remote);
      return { added: true };
    }
    case 'DELETE /fdb': {
      const mac = url.searchParams.get('mac');
      if (vni === undefined || !mac) throw new HttpError(400, 'vni and mac are required');
      return { removed: api.removeStatic(vni, mac) };
    }
    case 'POST /reload':
      if (!hooks.reload) throw new HttpError(409, 'no config file to reload (started without --config)');
      return { changes: await hooks.reload() };
    default:
      throw new HttpError(404, `no such endpoint: ${route}`);
  }
}

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  throw new HttpError(400, `${issue.path.join('.') || 'value'}: ${issue.message}`);
}

async function readBody(request: http.IncomingMessage): Promise<unknown> {
  return readJsonBody(request);
}

function reply(response: http.ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}
