/**
 * An incremental `text/event-stream` parser (WHATWG HTML, server-sent events): text may arrive split anywhere,
 * lines end in CRLF, LF or CR, `:` starts a comment, several `data:` lines of one event are joined with "\n",
 * and a blank line dispatches the event.
 */
export interface SseEvent {
  /** The `event:` field, `message` when absent. */
  event: string;
  data: string;
}

export class TooLargeError extends Error {
  constructor() {
    super('larger than allowed');
    this.name = 'TooLargeError';
  }
}

const LF = 10;
const CR = 13;

export class SseParser {
  /** Text not yet split into lines. */
  private pending = '';
  /** How much of `pending` is known to hold no line end (so long lines are not rescanned). */
  private scanned = 0;
  private dataLines: string[] = [];
  private dataLength = 0;
  private eventType = '';

  constructor(private readonly maxEventLength = 1024 * 1024) {}

  /** Feeds decoded text; returns the events it completed. */
  push(chunk: string): SseEvent[] {
    const text = this.pending + chunk;
    const events: SseEvent[] = [];
    let lineStart = 0;
    let index = this.scanned;
    while (index < text.length) {
      const code = text.charCodeAt(index);
      if (code !== LF && code !== CR) {
        index += 1;
        continue;
      }
      // A CR at the very end may be the first half of a CRLF split across chunks: decide when more text comes.
      if (code === CR && index + 1 === text.length) break;
      this.line(text.slice(lineStart, index), events);
      index += code === CR && text.charCodeAt(index + 1) === LF ? 2 : 1;
      lineStart = index;
    }
    this.pending = text.slice(lineStart);
    this.scanned = index - lineStart;
    if (this.pending.length > this.maxEventLength) throw new TooLargeError();
    return events;
  }

  /** The stream has ended: a last line or event left without its terminator is still delivered. */
  end(): SseEvent[] {
    const events: SseEvent[] = [];
    if (this.pending !== '') this.line(this.pending.endsWith('\r') ? this.pending.slice(0, -1) : this.pending, events);
    this.pending = '';
    this.scanned = 0;
    this.line('', events);
    return events;
  }

  private line(line: string, events: SseEvent[]): void {
    if (line === '') {
      if (this.dataLines.length > 0) events.push({ event: this.eventType || 'message', data: this.dataLines.join('\n') });
      this.dataLines = [];
      this.dataLength = 0;
      this.eventType = '';
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') {
      this.dataLength += value.length + 1;
      if (this.dataLength > this.maxEventLength) throw new TooLargeError();
      this.dataLines.push(value);
    } else if (field === 'event') {
      this.eventType = value;
    }
  }
}
