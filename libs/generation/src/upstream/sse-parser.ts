import { SseEvent, UpstreamFailure } from './upstream.types';

/** An event larger than this is not an LLM chunk; refuse it instead of buffering forever. */
const MAX_EVENT_BYTES = 8 * 1024 * 1024;

/** Incremental text/event-stream parser (the subset OpenAI-compatible servers use). */
export class SseParser {
  private buffer = '';
  private readonly decoder = new TextDecoder();

  push(chunk: Uint8Array | string): SseEvent[] {
    this.buffer += typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    // Normalise line endings, keeping a trailing \r that may be the first half of \r\n.
    const keepCr = this.buffer.endsWith('\r');
    this.buffer = this.buffer.replace(/\r\n?/g, '\n');
    if (keepCr) this.buffer = `${this.buffer.slice(0, -1)}\r`;
    const events: SseEvent[] = [];
    let end: number;
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const event = parseBlock(block);
      if (event) events.push(event);
    }
    if (this.buffer.length > MAX_EVENT_BYTES)
      throw new UpstreamFailure('malformed', 'upstream sent an oversized stream event');
    return events;
  }

  /** What is left when the stream ends (an event without its final blank line). */
  flush(): SseEvent[] {
    const rest = this.buffer.trim();
    this.buffer = '';
    const event = rest ? parseBlock(rest) : undefined;
    return event ? [event] : [];
  }
}

function parseBlock(block: string): SseEvent | undefined {
  const data: string[] = [];
  let event: string | undefined;
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
  }
  if (data.length === 0) return undefined;
  return { event, data: data.join('\n') };
}

/**
 * One SSE event carrying `data`. A line break ends a field, so data that holds "\n" (an upstream
 * event sent as several `data:` lines, which SseParser joins) goes out as one `data:` line per
 * line, which the reader joins back. Almost every chunk is one line: that path is one scan.
 */
export function sseDataFrame(data: string): string {
  if (!data.includes('\n')) return `data: ${data}\n\n`;
  return `data: ${data.replaceAll('\n', '\ndata: ')}\n\n`;
}
