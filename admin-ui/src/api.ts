// Talks to the gateway's admin API. The JWT lives in this module's memory only: never in
// localStorage, sessionStorage or a cookie, so closing or reloading the tab signs out.

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

/** An error answered by the gateway (OpenAI envelope) or a network failure (status 0). */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
    readonly requestId: string | null = null,
    readonly retryAfterSeconds: number | null = null,
  ) {
    super(message);
  }
}

interface Session {
  token: string;
  username: string;
  expiresAt: number;
}

let session: Session | null = null;
let expiryTimer: number | undefined;
const signedOutListeners = new Set<(reason: string | null) => void>();

export function currentSession(): Readonly<Session> | null {
  return session;
}

/** Calls `listener` on every sign-out; answers a function that stops it. */
export function onSignedOut(listener: (reason: string | null) => void): () => void {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}

export function signOut(reason: string | null = null): void {
  if (!session) return;
  session = null;
  window.clearTimeout(expiryTimer);
  for (const listener of signedOutListeners) listener(reason);
}

/** POST /auth/token; resolves when signed in as an admin, or throws a readable ApiFailure. */
export async function signIn(username: string, password: string): Promise<void> {
  const res = await send('/auth/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (!res.ok) {
    const failure = await failureOf(res);
    if (failure.code === 'invalid_credentials')
      throw new ApiFailure(401, failure.code, 'Wrong username or password.');
    if (failure.status === 429)
      throw new ApiFailure(
        429,
        failure.code,
        `Too many sign-in attempts. Try again in ${failure.retryAfterSeconds ?? 60} seconds.`,
      );
    throw failure;
  }
  const body = (await res.json()) as { access_token: string; expires_in: number };
  const claims = decodeClaims(body.access_token);
  if (claims?.role !== 'admin')
    throw new ApiFailure(403, 'permission_denied', 'This account is not an administrator.');
  session = {
    token: body.access_token,
    username: claims.username ?? username,
    expiresAt: Date.now() + body.expires_in * 1000,
  };
  // Sign out when the token expires rather than failing on the next click.
  window.clearTimeout(expiryTimer);
  // (setTimeout fires at once beyond ~24.8 days, so very long lifetimes are capped.)
  expiryTimer = window.setTimeout(
    () => signOut('Your session expired. Sign in again.'),
    Math.min(2_000_000_000, Math.max(0, body.expires_in * 1000 - 5_000)),
  );
}

/** One admin API call with the JWT; a 401 signs out (expired or revoked token). */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  if (!session) throw new ApiFailure(401, 'invalid_token', 'Not signed in.');
  const headers: Record<string, string> = { authorization: `Bearer ${session.token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await send(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) {
    signOut('Your session expired. Sign in again.');
    throw await failureOf(res);
  }
  if (!res.ok) throw await failureOf(res);
  return (await res.json()) as T;
}

/** Builds a query string from the defined, non-empty values. */
export function query(params: Record<string, string | number | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params))
    if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  const text = search.toString();
  return text ? `?${text}` : '';
}

async function send(path: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(path, { ...init, credentials: 'omit', cache: 'no-store' });
  } catch {
    throw new ApiFailure(
      0,
      'network_error',
      'The gateway did not answer. Check that it is running.',
    );
  }
}

async function failureOf(res: Response): Promise<ApiFailure> {
  const retryAfter = Number(res.headers.get('retry-after'));
  let envelope: {
    error?: { message?: string; code?: string; param?: string | null; request_id?: string };
  } = {};
  try {
    envelope = await res.json();
  } catch {
    // Not JSON (a proxy's error page): the status line is all there is.
  }
  const error = envelope.error ?? {};
  return new ApiFailure(
    res.status,
    error.code ?? `http_${res.status}`,
    error.message ?? `The gateway answered ${res.status} ${res.statusText}.`,
    error.param ?? null,
    error.request_id ?? res.headers.get('x-request-id'),
    Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null,
  );
}

function decodeClaims(token: string): { role?: string; username?: string } | null {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload)) as { role?: string; username?: string };
  } catch {
    return null;
  }
}
