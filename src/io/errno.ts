// errno numbers as the names people search for ('EPERM' for 1), for log lines
// and messages. Node's table lacks EBADFD, which a TAP deleted under its
// descriptor answers, so it is added here.

import { constants } from 'node:os';

/** Linux's "file descriptor in bad state". */
export const EBADFD = 77;

const ERRNO_NAMES = new Map<number, string>([[EBADFD, 'EBADFD'], ...Object.entries(constants.errno).map(([name, value]): [number, string] => [value, name])]);

/** 'EPERM' for 1, and so on; 'errno N' for numbers without a name. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}
