// Where the bearer token of a TCP control port lives, and reading it: shared
// by the daemon (control/auth.ts) and the CLI, which must not pay for
// node:crypto to read a file.

import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { CONTROL_DIR } from './endpoint';

/** A failure to set up the token; the message says what to do. */
export class TokenError extends Error {}

/**
 * /run/tsvtep/net<inode of this network namespace>-tcp-<host>-<port>.token: a
 * loopback port is per namespace, so daemons in other namespaces never share it.
 */
export function tokenFilePath(endpoint: { host: string; port: number }, namespaceFile = '/proc/self/ns/net'): string {
  let namespace = 'host';
  try {
    namespace = `net${statSync(namespaceFile).ino}`;
  } catch {
    // No /proc: the address and port still tell daemons apart.
  }
  return path.join(CONTROL_DIR, `${namespace}-tcp-${endpoint.host.replace(/:/g, '_')}-${endpoint.port}.token`);
}

/** The token in file: its first line, at least 16 characters. Throws TokenError. */
export function readTokenFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new TokenError(`control token file ${file} does not exist`);
    if (code === 'EACCES') throw new TokenError(`control token file ${file} is not readable (run as root)`);
    throw new TokenError(`cannot read control token file ${file}: ${(error as Error).message}`);
  }
  const token = text.split('\n')[0].trim();
  if (token.length < 16 || /\s/.test(token)) throw new TokenError(`control token file ${file}: the first line must be a token of 16 or more characters`);
  return token;
}

