import { sessionOutcomeFor } from './session-credential-source';

describe('sessionOutcomeFor', () => {
  it('blames the credential only for what it can cause', () => {
    expect(sessionOutcomeFor('success')).toBe('success');
    expect(sessionOutcomeFor('auth_error')).toBe('unauthorized');
    expect(sessionOutcomeFor('rate_limited')).toBe('rate_limited');
    expect(sessionOutcomeFor('client_error')).toBe('neutral');
    expect(sessionOutcomeFor('aborted')).toBe('neutral');
    for (const fault of [
      'server_error',
      'timeout',
      'connect_error',
      'malformed',
      'stream_cut',
      'upstream_rejected',
    ] as const)
      expect(sessionOutcomeFor(fault)).toBe('failure');
  });
});
