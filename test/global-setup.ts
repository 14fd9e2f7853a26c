// The system tests (vitest project "system", test/integration) need root,
// network namespaces and a few tools. If any is missing the run fails here,
// loudly, instead of skipping tests.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

const REQUIRED_TOOLS = ['ip', 'bridge', 'ping', 'ethtool', 'tcpdump', 'iperf3'];

export default function setup(): void {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push('the system tests must run as root (they create network namespaces and TAP devices): sudo npm run test:system');
  if (!existsSync('/dev/net/tun')) problems.push('/dev/net/tun is missing');
  for (const tool of REQUIRED_TOOLS) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      problems.push(`${tool} is not installed (sudo scripts/setup.sh installs what the tests need)`);
    }
  }
  const root = path.resolve(__dirname, '..');
  try {
    // Where src/io/native.ts will load it from: build/Release, else prebuilds/.
    (require('node-gyp-build') as { path(dir: string): string }).path(root);
  } catch {
    problems.push('native addon not built (npm ci)');
  }
  if (!existsSync(path.join(root, 'dist', 'src', 'cli.js'))) problems.push('dist/ not built (npm run build)');
  if (problems.length > 0) throw new Error(`cannot run the test suite:\n  ${problems.join('\n  ')}`);
}
