// Reads the configuration file: YAML, which also accepts JSON.
//
//   port: 4789
//   networks:
//     - vni: 1000
//       bridge: br1000
//       peers: [10.0.1.42, fd00::42]
//       static:
//         - { mac: "02:42:ac:12:00:0c", remote: 10.0.1.42 }

import { readFile } from 'node:fs/promises';
// yaml is loaded on first use: a daemon started from flags does not pay for it.
import type * as Yaml from 'yaml';
import { ConfigError, parseConfig, type DaemonConfig } from './config';

/** Parses and validates the file; ConfigError says which file, line or field is wrong. */
export async function loadConfigFile(path: string, overrides: Record<string, unknown> = {}): Promise<DaemonConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigError(`config file ${path} does not exist`);
    if (code === 'EACCES') throw new ConfigError(`config file ${path} is not readable`);
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  let document: unknown;
  try {
    document = yaml().parse(text, { prettyErrors: true });
  } catch (error) {
    if (error instanceof yaml().YAMLParseError) {
      const line = error.linePos?.[0]?.line;
      const message = error.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
      throw new ConfigError(`${path}${line ? ` line ${line}` : ''}: ${message}`);
    }
    throw error;
  }
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    throw new ConfigError(`${path}: expected a mapping with a "networks" list`);
  }
  const merged: Record<string, unknown> = { ...(document as Record<string, unknown>) };
  for (const [key, value] of Object.entries(overrides)) if (value !== undefined) merged[key] = value;
  try {
    return parseConfig(merged);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new ConfigError(error.message.split('\n').map((line) => `${path}: ${line}`).join('\n'));
    }
    throw error;
  }
}

function yaml(): typeof Yaml {
  return require('yaml') as typeof Yaml;
}
