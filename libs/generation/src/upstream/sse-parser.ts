import { SseEvent, UpstreamFailure } from './upstream.types';

/** An event larger than this is not an LLM chunk; refuse it instead of buffering forever. */
const MAX_EVENT_BYTES = 8 * 1024 * 1024;

/**
 * Incremental text/event-stream parser (the subset OpenAI-compatible servers use). Each chunk is
 * scanned once: the text of an event still incomplete is kept in the pieces it came in and
 * joined when its blank line arrives, so an event spread over many chunks costs its length, not
 * its length times the number of chunks.
 */
export class SseParser {
  private pieces: string[] = [];
  private pieceChars = 0;
  /** A "\r" that ended a chunk may be the first half of "\r\n": held for the next one. */
  private heldCr = false;
  private readonly decoder = new TextDecoder();

  push(chunk: Uint8Array | string): SseEvent[] {
    let text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    if (this.heldCr) text = `\r${text}`;
    this.heldCr = text.endsWith('\r');
    if (this.heldCr) text = text.slice(0, -1);
    if (text.includes('\r')) text = text.replace(/\r\n?/g, '\n');

    const events: SseEvent[] = [];
    let start = 0;
    // The blank line may straddle the chunks: "…\n" then "\n…".
    const last = this.pieces.at(-1);
    if (last !== undefined && last.endsWith('\n') && text.startsWith('\n')) {
      this.pieces[this.pieces.length - 1] = last.slice(0, -1);
      this.endEvent(events, '');
      start = 1;
    }
    let end: number;
    while ((end = text.indexOf('\n\n', start)) >= 0) {
      this.endEvent(events, text.slice(start, end));
      start = end + 2;
    }
    if (start < text.length) {
      this.pieces.push(start === 0 ? text : text.slice(start));
      this.pieceChars += text.length - start;
      if (this.pieceChars > MAX_EVENT_BYTES)
        throw new UpstreamFailure('malformed', 'upstream sent an oversized stream event');
    }
    return events;
  }

  /** What is left when the stream ends (an event without its final blank line). */
  flush(): SseEvent[] {
    const rest = this.pieces.join('').trim();
    this.pieces = [];
    this.pieceChars = 0;
    this.heldCr = false;
    const event = rest ? parseBlock(rest) : undefined;
    return event ? [event] : [];
  }

  /** The current event ends with `tail`: parse it and start the next one. */
  private endEvent(events: SseEvent[], tail: string): void {
    const block = this.pieces.length === 0 ? tail : this.pieces.join('') + tail;
    this.pieces = [];
    this.pieceChars = 0;
    const event = parseBlock(block);
    if (event) events.push(event);
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
