import { ApiError } from '@app/observability';

/**
 * Who may point a provider at a new upstream URL through the admin API (SSRF guard). The
 * gateway sends its upstream API keys and session credentials to `base_url`, and the session
 * health check probes it, so a changed URL could leak credentials or reach internal services
 * (cloud metadata, admin ports). `PROVIDER_BASE_URL_ALLOWLIST` entries:
 *   `*`                        any http(s) URL (explicit opt-in)
 *   `https://api.openai.com`   exactly this origin (scheme, host and port)
 *   `api.example.com`          this host, any scheme and port
 *   `*.example.com`            any subdomain of example.com (not example.com itself)
 * An empty list refuses every change: the URL then only comes from PROVIDERS_FILE.
 */
export function checkBaseUrlChange(raw: string, allowlist: readonly string[]): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw ApiError.badRequest('base_url: expected an http(s) URL', 'base_url');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw ApiError.badRequest('base_url: expected an http(s) URL', 'base_url');
  if (url.username || url.password)
    throw ApiError.badRequest(
      'base_url: credentials in the URL are not allowed; use api_key in PROVIDERS_FILE',
      'base_url',
    );
  if (allowlist.length === 0)
    throw ApiError.forbidden(
      'Changing base_url through the API is disabled; set PROVIDER_BASE_URL_ALLOWLIST or edit PROVIDERS_FILE',
      'base_url_change_disabled',
    );
  if (!allowlist.some((entry) => matches(url, entry)))
    throw new ApiError(
      403,
      'permission_error',
      'base_url_not_allowed',
      `base_url ${url.origin} is not in PROVIDER_BASE_URL_ALLOWLIST`,
      'base_url',
    );
  // Normalized (lower-case host, no default port); trailing slashes are the client's business.
  return url.toString().replace(/\/+$/, '');
}

function matches(url: URL, entry: string): boolean {
  const rule = entry.trim().toLowerCase();
  if (rule === '*') return true;
  if (rule.includes('://')) {
    try {
      return new URL(rule).origin === url.origin;
    } catch {
      return false;
    }
  }
  const host = url.hostname.toLowerCase();
  if (rule.startsWith('*.')) return host.endsWith(rule.slice(1)) && host.length > rule.length - 1;
  return host === rule;
}
