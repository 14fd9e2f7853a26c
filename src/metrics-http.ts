// The HTTP server behind --metrics (/metrics and /healthz): binding with
// errors a person can act on, and routing by exact path. It serves a few
// scrapes a minute, so it stays simple: no body parsing, GET and HEAD only.

import http from 'node:http';
import { formatListenAddress, type ListenAddress } from './core/listen-address';

/** A failure to listen; the message says what to do. */
export class ListenError extends Error {}

export interface Reply {
  status: number;
  contentType: string;
  body: string;
  headers?: Record<string, string>;
}

/** Handlers by exact path ('/metrics'); the query string is ignored. */
export type Routes = Record<string, () => Promise<Reply>>;

/** What a request gets: the route's reply, 404 for unknown paths, 405 for methods other than GET and HEAD. */
export async function respond(routes: Routes, method: string | undefined, url: string | undefined): Promise<Reply> {
  const path = (url ?? '/').split('?')[0];
  const handler = Object.prototype.hasOwnProperty.call(routes, path) ? routes[path] : undefined;
  if (!handler) return { status: 404, contentType: 'text/plain; charset=utf-8', body: `not found; try ${Object.keys(routes).join(' or ')}\n` };
  if (method !== 'GET' && method !== 'HEAD') {
    return { status: 405, contentType: 'text/plain; charset=utf-8', body: 'method not allowed\n', headers: { Allow: 'GET, HEAD' } };
  }
  return handler();
}

export interface HttpServer {
  readonly address: ListenAddress;
  /** Stops listening and drops open connections (scrapers keep theirs alive). */
  close(): void;
}

/** Listens on address and serves routes; throws ListenError if the address cannot be bound. */
export async function startHttpServer(
  address: ListenAddress,
  routes: Routes,
  onError: (error: unknown) => void,
): Promise<HttpServer> {
  const server = http.createServer((req, res) => {
    respond(routes, req.method, req.url)
      .catch((error: unknown): Reply => {
        onError(error);
        return { status: 500, contentType: 'text/plain; charset=utf-8', body: 'internal error (see the log)\n' };
      })
      .then((reply) => {
        res.writeHead(reply.status, {
          'Content-Type': reply.contentType,
          'Content-Length': Buffer.byteLength(reply.body),
          ...reply.headers,
        });
        res.end(req.method === 'HEAD' ? undefined : reply.body);
      })
      .catch(onError);
  });
  // Scrapes are small and quick; do not let a stuck client hold resources.
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  server.maxConnections = 64;
  await new Promise<void>((resolve, reject) => {
    const onListenError = (error: NodeJS.ErrnoException): void => reject(listenError(address, error));
    server.once('error', onListenError);
    server.listen({ host: address.host, port: address.port, exclusive: true }, () => {
      server.off('error', onListenError);
      resolve();
    });
  });
  server.on('error', onError);
  // Whoever owns the process decides when it ends; an idle listener or a
  // scraper's keep-alive connection must not hold it open.
  server.unref();
  server.on('connection', (socket) => socket.unref());
  return {
    address,
    close(): void {
      server.close();
      server.closeAllConnections();
    },
  };
}

function listenError(address: ListenAddress, error: NodeJS.ErrnoException): ListenError {
  const where = formatListenAddress(address);
  switch (error.code) {
    case 'EADDRINUSE':
      return new ListenError(`metrics port ${address.port} is in use on ${address.host} (pick another with --metrics)`);
    case 'EADDRNOTAVAIL':
      return new ListenError(`metrics address ${address.host} is not on this host (ip addr lists local addresses)`);
    case 'EACCES':
      return new ListenError(`not allowed to listen on ${where} for metrics (run as root or use a port above 1023)`);
    case 'EAFNOSUPPORT':
      return new ListenError(`cannot listen on ${where} for metrics: IPv6 is not available here`);
    default:
      return new ListenError(`cannot listen on ${where} for metrics: ${error.code ?? error.message}`);
  }
}
