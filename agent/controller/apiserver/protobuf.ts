/**
 * A minimal protocol buffers wire-format reader (varint, fixed64, length-delimited, fixed32):
 * enough to read the few Kubernetes messages in proto-objects.ts. Unknown fields are skipped.
 */

export class ProtobufError extends Error {}

export interface Field {
  no: number;
  /** Varints as bigint (int64 fields may not fit a number); bytes for length-delimited fields. */
  value: bigint | Buffer;
}

function varint(buf: Buffer, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new ProtobufError('truncated varint');
    const b = buf[pos++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7n;
    if (shift > 63n) throw new ProtobufError('varint too long');
  }
}

export function readFields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [key, p] = varint(buf, pos);
    pos = p;
    const no = Number(key >> 3n);
    const wire = Number(key & 7n);
    switch (wire) {
      case 0: {
        const [v, q] = varint(buf, pos);
        out.push({ no, value: v });
        pos = q;
        break;
      }
      case 1:
        if (pos + 8 > buf.length) throw new ProtobufError('truncated fixed64');
        out.push({ no, value: buf.readBigUInt64LE(pos) });
        pos += 8;
        break;
      case 2: {
        const [len, q] = varint(buf, pos);
        const end = q + Number(len);
        if (end > buf.length) throw new ProtobufError('truncated length-delimited field');
        out.push({ no, value: buf.subarray(q, end) });
        pos = end;
        break;
      }
      case 5:
        if (pos + 4 > buf.length) throw new ProtobufError('truncated fixed32');
        out.push({ no, value: BigInt(buf.readUInt32LE(pos)) });
        pos += 4;
        break;
      default:
        throw new ProtobufError(`unsupported wire type ${wire}`);
    }
  }
  return out;
}

const bytes = (f: Field): Buffer => {
  if (!Buffer.isBuffer(f.value)) throw new ProtobufError(`field ${f.no} should be length-delimited`);
  return f.value;
};

export const asString = (f: Field) => bytes(f).toString('utf8');
export const asBytes = bytes;
export const asMessage = (f: Field) => readFields(bytes(f));
export const asBool = (f: Field) => f.value !== 0n;
/** int64/int32 (two's complement for negatives). */
export const asInt = (f: Field) => {
  if (Buffer.isBuffer(f.value)) throw new ProtobufError(`field ${f.no} should be a varint`);
  return Number(BigInt.asIntN(64, f.value));
};

/** A map<string, V> entry (key = 1, value = 2). */
export function mapEntry<V>(f: Field, value: (f: Field) => V, empty: V): [string, V] {
  let k = '';
  let v = empty;
  for (const e of asMessage(f)) {
    if (e.no === 1) k = asString(e);
    else if (e.no === 2) v = value(e);
  }
  return [k, v];
}
