import type { IncomingMessage, ServerResponse } from 'node:http';
import { LocalUpstream } from './local-upstream';

export type CredentialBehaviour = 'ok' | 'unauthorized' | 'forbidden' | 'error' | 'rate_limited';

const STATUS: Record<CredentialBehaviour, number> = {
  ok: 200,
  unauthorized: 401,
  forbidden: 403,
  error: 500,
  rate_limited: 429,
};

/**
 * An OpenAI-compatible upstream that authenticates every request by its credential
 * (`Authorization: Bearer …` or `Cookie: …`), counts requests per credential and path, and
 * answers each credential as the test scripted it. Unknown credentials get `defaultBehaviour`.
 */
export class SessionUpstream extends LocalUpstream {
  /** credential → number of requests (every path). */
  readonly hits = new Map<string, number>();
  /** Requests as seen: which header carried the credential, and the path. */
  readonly seen: { credential: string; via: 'bearer' | 'cookie' | 'none'; path: string }[] = [];
  readonly behaviour = new Map<string, CredentialBehaviour>();
  defaultBehaviour: CredentialBehaviour = 'unauthorized';

  /** Requests with this credential on this path suffix (e.g. '/chat/completions'). */
  count(credential: string, pathSuffix = ''): number {
    return this.seen.filter((s) => s.credential === credential && s.path.endsWith(pathSuffix))
      .length;
  }

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    const auth = req.headers.authorization;
    const cookie = req.headers.cookie;
    const via = auth?.startsWith('Bearer ') ? 'bearer' : cookie ? 'cookie' : 'none';
    const credential = via === 'bearer' ? auth!.slice(7) : (cookie ?? '');
    this.hits.set(credential, (this.hits.get(credential) ?? 0) + 1);
    const path = req.url ?? '/';
    this.seen.push({ credential, via, path });
    const behaviour = this.behaviour.get(credential) ?? this.defaultBehaviour;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = STATUS[behaviour];
      if (status !== 200) {
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (status === 429) headers['retry-after'] = '1';
        res.writeHead(status, headers);
        res.end(JSON.stringify({ error: { message: behaviour, type: 'error', code: null } }));
        return;
      }
      let body: { model?: string } = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
      } catch {
        body = {};
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      if (path.endsWith('/models')) {
        res.end(JSON.stringify({ object: 'list', data: [] }));
        return;
      }
      res.end(
        JSON.stringify({
          id: 'chatcmpl-session',
          object: 'chat.completion',
          created: Math.floor(Date.now() / 1000),
          model: body.model,
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: 'answered with a pooled credential' },
              finish_reason: 'stop',
            },
          ],
          usage: { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 },
        }),
      );
    });
  }
}
