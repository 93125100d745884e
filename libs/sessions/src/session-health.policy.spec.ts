import {
  applyOutcome,
  failureRate,
  outcomeForStatus,
  SessionHealthState,
} from './session-health.policy';

const policy = { window: 10, minSample: 4, threshold: 0.5 };
const healthy = (recentOutcomes = ''): SessionHealthState => ({
  status: 'healthy',
  recentOutcomes,
});

describe('session health policy', () => {
  it('maps upstream statuses to outcomes', () => {
    expect(outcomeForStatus(200)).toBe('success');
    expect(outcomeForStatus(401)).toBe('unauthorized');
    expect(outcomeForStatus(403)).toBe('unauthorized');
    expect(outcomeForStatus(429)).toBe('rate_limited');
    expect(outcomeForStatus(400)).toBe('neutral');
    expect(outcomeForStatus(404)).toBe('neutral');
    expect(outcomeForStatus(500)).toBe('failure');
    expect(outcomeForStatus(503)).toBe('failure');
    expect(outcomeForStatus(undefined)).toBe('failure');
  });

  it('computes the failure rate of the window', () => {
    expect(failureRate('')).toBe(0);
    expect(failureRate('ssff')).toBe(0.5);
    expect(failureRate('f')).toBe(1);
  });

  it('does not quarantine before the minimum sample', () => {
    const change = applyOutcome(healthy('ff'), 'failure', policy);
    expect(change.status).toBe('healthy');
    expect(change.failureRate).toBe(1);
    expect(change.failureDelta).toBe(1);
  });

  it('quarantines once the sample is large enough and the rate reaches the threshold', () => {
    const change = applyOutcome(healthy('ssf'), 'failure', policy);
    expect(change.recentOutcomes).toBe('ssff');
    expect(change.status).toBe('quarantined');
    expect(change.transition).toBe('quarantined');
  });

  it('keeps only the last N outcomes', () => {
    const change = applyOutcome(healthy('ffffffssss'), 'success', policy);
    expect(change.recentOutcomes).toBe('fffffssss' + 's');
    expect(change.recentOutcomes).toHaveLength(10);
    expect(change.failureRate).toBe(0.5);
    expect(change.status).toBe('healthy');
  });

  it('expires on 401/403 whatever the rate', () => {
    const change = applyOutcome(healthy('sssss'), 'unauthorized', policy);
    expect(change.status).toBe('expired');
    expect(change.transition).toBe('expired');
  });

  it('rests a session on 429 without counting a failure', () => {
    const change = applyOutcome(healthy('ffs'), 'rate_limited', policy);
    expect(change).toMatchObject({
      status: 'healthy',
      recentOutcomes: 'ffs',
      cooldown: true,
      failureDelta: 0,
      successDelta: 0,
    });
  });

  it('counts the client 4xx as nothing', () => {
    const change = applyOutcome(healthy('s'), 'neutral', policy);
    expect(change).toMatchObject({ recentOutcomes: 's', failureDelta: 0, successDelta: 0 });
  });

  it('never revives a disabled or expired session by itself', () => {
    expect(applyOutcome({ status: 'disabled', recentOutcomes: '' }, 'success', policy).status).toBe(
      'disabled',
    );
    expect(applyOutcome({ status: 'expired', recentOutcomes: '' }, 'success', policy).status).toBe(
      'expired',
    );
    expect(
      applyOutcome({ status: 'quarantined', recentOutcomes: 'ffff' }, 'failure', policy).transition,
    ).toBeUndefined();
  });
});
