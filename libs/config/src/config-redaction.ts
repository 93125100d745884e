/**
 * What a configuration error may show of a value. A variable named like a credential is never
 * shown; any other value has the password of a URL replaced by `***`, keeping the rest (scheme,
 * user, host) so the operator still sees which server is meant.
 */

/** Names whose whole value is a credential (JWT_SECRET, ADMIN_PASSWORD, API_KEYS, …). */
const SECRET_NAME = /SECRET|PASSWORD|KEY|TOKEN/i;

/** Query parameters that carry a credential (libpq's `?password=`, `?sslpassword=`, …). */
const SECRET_QUERY_PARAM = /([?&][^=&#\s]*(?:pass|secret|key|token)[^=&#\s]*=)[^&#\s]*/gi;

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

/**
 * Replaces a URL's password with `***`. Works on text that is not a valid URL too (a bad one is
 * what gets reported): the userinfo runs from `://` (or the start) to the last `@`, so a
 * password holding an unescaped `@`, `/` or `#` is still covered — masking too much is fine.
 */
export function maskUrlCredentials(value: string): string {
  let masked = value;
  const scheme = masked.indexOf('://');
  const start = scheme >= 0 ? scheme + 3 : 0;
  const at = masked.lastIndexOf('@');
  if (at > start) {
    const colon = masked.indexOf(':', start);
    if (colon >= 0 && colon < at) masked = `${masked.slice(0, colon + 1)}***${masked.slice(at)}`;
  }
  return masked.replace(SECRET_QUERY_PARAM, '$1***');
}

/** ` (got …)` for a problem line, or nothing when the variable holds a credential. */
export function shownValue(name: string, value: string | undefined): string {
  if (isSecretName(name)) return '';
  return ` (got ${JSON.stringify(value === undefined ? null : maskUrlCredentials(value))})`;
}
