import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { controlPlaneHealth, registerControlPlaneMetrics } from '../../src/control-plane/metrics';
import type { ControlPlaneStatus } from '../../src/control-plane/source';
import { parseSamples, promtoolCheck } from '../helpers/metrics';

function reporter(status: Partial<ControlPlaneStatus>, announced = 3) {
  const full: ControlPlaneStatus = {
    origin: 'evpn',
    up: true,
    members: new Map([[100, 2]]),
    watchRestarts: 0,
    macMoves: 0,
    skipped: {},
    lastError: undefined,
    announced,
    ...status,
  };
  return { status: () => full };
}

describe('control-plane metrics and health', () => {
  it('shows the EVPN state on /metrics in a form promtool accepts', async () => {
    const registry = new Registry();
    registerControlPlaneMetrics(registry, reporter({ up: false, watchRestarts: 4, macMoves: 2, skipped: { no_next_hop: 1 }, lastError: 'No connection established' }));
    const text = await registry.metrics();
    const samples = parseSamples(text);
    expect(samples.value('tsvtep_evpn_up')).toBe(0);
    expect(samples.value('tsvtep_evpn_members', { vni: '100' })).toBe(2);
    expect(samples.value('tsvtep_evpn_session_restarts_total')).toBe(4);
    expect(samples.value('tsvtep_evpn_mac_moves_total')).toBe(2);
    expect(samples.value('tsvtep_evpn_skipped_total', { reason: 'no_next_hop' })).toBe(1);
    expect(samples.value('tsvtep_evpn_announced')).toBe(3);
    const check = promtoolCheck(text);
    expect(check.code, check.output).toBe(0);
  });

  it('says in /healthz whether the control plane is up, and why not', () => {
    expect(controlPlaneHealth(reporter({}))).toEqual({ origin: 'evpn', up: true, members: { 100: 2 } });
    expect(controlPlaneHealth(reporter({ up: false, lastError: 'Connection dropped' }))).toEqual({
      origin: 'evpn',
      up: false,
      lastError: 'Connection dropped',
      members: { 100: 2 },
    });
  });
});
