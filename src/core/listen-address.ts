// ADDRESS:PORT as written on the command line and in config files (--metrics):
// '127.0.0.1:9477' or '[::1]:9477'. Parsing returns a message instead of
// throwing, so config validation can show it as is.

import { isIP } from 'node:net';

export interface ListenAddress {
  /** An IPv4 or IPv6 address, without brackets. */
  host: string;
  port: number;
}

const EXAMPLE = 'e.g. 127.0.0.1:9477 or [::1]:9477';

/**
 * Parses '127.0.0.1:9477' or '[::1]:9477'. Returns the address, or a string
 * saying what is wrong with the text.
 */
export function parseListenAddress(text: string): ListenAddress | string {
  const bracketed = /^\[([^\]]*)\]:(\d+)$/.exec(text);
  const plain = /^([^:[\]]*):(\d+)$/.exec(text);
  const match = bracketed ?? plain;
  if (!match) {
    if (!text.startsWith('[') && text.split(':').length > 2) {
      return `${text}: write an IPv6 address in brackets (${EXAMPLE})`;
    }
    return `${text} is not ADDRESS:PORT (${EXAMPLE})`;
  }
  const [, host, portText] = match;
  const family = isIP(host);
  if (family === 0) return `${host === '' ? `'${text}'` : host} is not an IPv4 or IPv6 address (${EXAMPLE})`;
  if (bracketed && family !== 6) return `${text}: brackets are for IPv6 addresses only (${EXAMPLE})`;
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) return `port ${portText} is out of range (1 to 65535)`;
  return { host, port };
}

/** 127.0.0.1:9477 or [::1]:9477, for messages and URLs. */
export function formatListenAddress(address: ListenAddress): string {
  return isIP(address.host) === 6 ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
