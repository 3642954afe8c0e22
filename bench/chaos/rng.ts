/** A seeded PRNG (mulberry32): the same seed picks the same faults, targets and delays. */
export class Rng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  pick<T>(xs: readonly T[]): T {
    if (!xs.length) throw new Error('nothing to pick from');
    return xs[Math.floor(this.next() * xs.length)]!;
  }
}
