import { ApiError } from '@app/observability';
import { checkBaseUrlChange } from './base-url-policy';

function refusal(url: string, allowlist: string[]): string {
  try {
    checkBaseUrlChange(url, allowlist);
  } catch (err) {
    if (err instanceof ApiError) return `${err.status} ${err.code}`;
    throw err;
  }
  return 'allowed';
}

describe('checkBaseUrlChange (PROVIDER_BASE_URL_ALLOWLIST)', () => {
  it('refuses every change while the allow-list is empty', () => {
    expect(refusal('https://api.openai.com/v1', [])).toBe('403 base_url_change_disabled');
  });

  it('matches exact origins, bare hosts and subdomain patterns', () => {
    const list = ['https://api.openai.com', 'llm.internal.example', '*.openai.azure.com'];
    expect(refusal('https://api.openai.com/v1', list)).toBe('allowed');
    expect(refusal('http://api.openai.com/v1', list)).toBe('403 base_url_not_allowed');
    expect(refusal('https://api.openai.com:8443/v1', list)).toBe('403 base_url_not_allowed');
    expect(refusal('http://llm.internal.example:9000/v1', list)).toBe('allowed');
    expect(refusal('https://east.openai.azure.com/openai', list)).toBe('allowed');
    expect(refusal('https://openai.azure.com/', list)).toBe('403 base_url_not_allowed');
    expect(refusal('https://evilopenai.azure.com/', list)).toBe('403 base_url_not_allowed');
    expect(refusal('https://api.openai.com.evil.test/v1', list)).toBe('403 base_url_not_allowed');
  });

  it('never lets SSRF targets through a named allow-list', () => {
    const list = ['https://api.openai.com', '*.example.com'];
    for (const url of [
      'http://169.254.169.254/latest/meta-data/',
      'http://[::1]:8000/admin',
      'http://127.0.0.1:5432/',
      'http://localhost:6379/',
      'http://0x7f000001/',
      'https://api.openai.com@169.254.169.254/',
      'http://example.com.169.254.169.254.nip.io/',
    ])
      expect([url, refusal(url, list)]).toEqual([url, expect.stringMatching(/^40[03] /)]);
  });

  it('refuses what is not an http(s) URL, and credentials in the URL', () => {
    expect(refusal('file:///etc/passwd', ['*'])).toBe('400 invalid_request');
    expect(refusal('gopher://x/', ['*'])).toBe('400 invalid_request');
    expect(refusal('not a url', ['*'])).toBe('400 invalid_request');
    expect(refusal('https://user:pw@api.openai.com/v1', ['*'])).toBe('400 invalid_request');
    expect(refusal('https://anything.test/v1', ['*'])).toBe('allowed');
  });

  it('normalizes the stored URL', () => {
    expect(checkBaseUrlChange('HTTPS://API.OpenAI.com:443/v1/', ['*'])).toBe(
      'https://api.openai.com/v1',
    );
  });
});
