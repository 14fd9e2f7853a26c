// --metrics on a wildcard address is allowed (the exporter convention) and
// logs one warning: it is unauthenticated and reachable from other hosts. A
// loopback address logs none.

import { describe, expect, it } from 'vitest';
import { startDaemon } from '../../src/lab/process';
import { linesMatching } from '../helpers/hostile';
import { useTopology } from '../helpers/lab';
import { httpRequest } from '../helpers/metrics';

const VNI = 100;

describe('--metrics on a wildcard address', () => {
  const lab = useTopology({ hosts: 2, vnis: [VNI], ipv6: true });
  const args = (metrics: string) => ['--vni', String(VNI), '--bridge', 'br100', '--peer', lab().hosts[1].underlayIp, '--metrics', metrics];

  for (const [metrics, warnings] of [['0.0.0.0:9477', 1], ['[::]:9478', 1], ['127.0.0.1:9479', 0]] as const) {
    it(`${metrics}: ${warnings} warning(s), and it serves`, async () => {
      const daemon = await startDaemon(lab(), lab().hosts[0].ns, args(metrics));
      try {
        const port = metrics.split(':').pop() as string;
        // On a wildcard address it is reachable from the other host, over the underlay.
        const host = warnings ? lab().hosts[0].underlayIp : '127.0.0.1';
        expect((await httpRequest(lab(), warnings ? lab().hosts[1].ns : lab().hosts[0].ns, `http://${host}:${port}/metrics`)).status).toBe(200);
        const lines = linesMatching(daemon, /reachable from other hosts and unauthenticated/);
        expect(lines).toHaveLength(warnings);
        if (warnings) expect(lines[0].level).toBe(40);
      } finally {
        await daemon.stop();
      }
    });
  }
});
