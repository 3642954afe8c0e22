/**
 * Go-style durations ("500ms", "1m30s", "2h"), the format Pebble uses in layers and
 * query parameters. Values are kept in milliseconds (sub-millisecond precision is not
 * useful for supervision and would only invite float noise).
 */
const UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

export function parseDuration(text: string): number {
  const s = text.trim();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let pos = 0;
  let sign = 1;
  let body = s;
  if (body.startsWith('-') || body.startsWith('+')) {
    sign = body.startsWith('-') ? -1 : 1;
    body = body.slice(1);
  }
  if (body === '') throw new Error(`invalid duration ${JSON.stringify(text)}`);
  re.lastIndex = 0;
  while (pos < body.length) {
    re.lastIndex = pos;
    const m = re.exec(body);
    if (!m) {
      throw new Error(`invalid duration ${JSON.stringify(text)} (expected a number and a unit: ns, us, ms, s, m, h)`);
    }
    total += parseFloat(m[1]!) * UNITS[m[2]!]!;
    pos = re.lastIndex;
  }
  return sign * total;
}

/** Formats like Go's time.Duration.String() for the values we produce (ms resolution). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  const neg = ms < 0;
  let rest = Math.abs(ms);
  if (rest < 1000) return `${neg ? '-' : ''}${trimFloat(rest)}ms`;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const s = rest / 1000;
  let out = '';
  if (h) out += `${h}h`;
  if (h || m) out += `${m}m`;
  out += `${trimFloat(s)}s`;
  return (neg ? '-' : '') + out;
}

function trimFloat(n: number): string {
  return String(Number(n.toFixed(3)));
}
