import { EventEmitter } from 'node:events';

export interface LogEntry {
  time: Date;
  service: string;
  /** One line, including its trailing newline, as Pebble reports it. */
  message: string;
}

/**
 * Per-service ring buffers of output lines, bounded by bytes so a chatty service cannot
 * grow the sidecar's memory. Followers get new lines through the 'entry' event.
 */
export class LogStore extends EventEmitter {
  private buffers = new Map<string, { entries: LogEntry[]; bytes: number }>();

  constructor(private readonly maxBytesPerService = 512 * 1024) {
    super();
    this.setMaxListeners(0);
  }

  append(service: string, message: string): void {
    let b = this.buffers.get(service);
    if (!b) {
      b = { entries: [], bytes: 0 };
      this.buffers.set(service, b);
    }
    const entry = { time: new Date(), service, message };
    b.entries.push(entry);
    b.bytes += message.length + 64;
    while (b.bytes > this.maxBytesPerService && b.entries.length > 1) {
      const dropped = b.entries.shift()!;
      b.bytes -= dropped.message.length + 64;
    }
    this.emit('entry', entry);
  }

  /** Last `n` entries (all when n < 0) across the given services (all when empty), oldest first. */
  tail(services: string[], n: number): LogEntry[] {
    const names = services.length ? services : [...this.buffers.keys()];
    const all = names.flatMap((s) => this.buffers.get(s)?.entries ?? []);
    all.sort((a, b) => a.time.getTime() - b.time.getTime());
    return n < 0 ? all : n === 0 ? [] : all.slice(-n);
  }
}

/**
 * Splits a byte stream into lines; a partial line is flushed when it grows too long or
 * the stream ends, so output without newlines is still visible.
 */
export class LineSplitter {
  private pending = '';
  constructor(
    private readonly emitLine: (line: string) => void,
    private readonly maxLine = 16 * 1024,
  ) {}

  write(chunk: Buffer | string): void {
    this.pending += chunk.toString();
    let i: number;
    while ((i = this.pending.indexOf('\n')) >= 0) {
      this.emitLine(this.pending.slice(0, i + 1));
      this.pending = this.pending.slice(i + 1);
    }
    while (this.pending.length > this.maxLine) {
      this.emitLine(this.pending.slice(0, this.maxLine) + '\n');
      this.pending = this.pending.slice(this.maxLine);
    }
  }

  end(): void {
    if (this.pending) this.emitLine(this.pending + '\n');
    this.pending = '';
  }
}
