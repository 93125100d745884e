import type { TestGateway } from './gateway';

/** One JSON call to a test gateway: its status, parsed body (null when empty) and headers. */
export interface Reply {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  headers: Headers;
}

/** `auth` goes as a Bearer token (an API key or an admin JWT); `body` as JSON. */
export async function call(
  gw: TestGateway,
  method: string,
  route: string,
  auth?: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const all: Record<string, string> = { ...headers };
  if (auth) all.authorization = `Bearer ${auth}`;
  if (body !== undefined) all['content-type'] = 'application/json';
  const res = await fetch(`${gw.url}${route}`, {
    method,
    headers: all,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}
