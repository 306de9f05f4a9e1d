// The upgrader's batches by id. Its ids go up by one per batch and a batch lives about one
// broker round trip, so the ids alive at a time are nearly consecutive: they sit in a ring
// indexed by id. A Map with one set and one delete per batch rehashed into a new table every
// few dozen batches (~0.5 KiB per request in produce-path --alloc). An id that stays while
// RING_SIZE newer ones come (a batch held under its stamp) moves to a Map, as does one added
// out of order (restored after a restart).

const RING_SIZE = 1024; // a power of two
const MASK = RING_SIZE - 1;

export class IdTable<T> {
  private readonly ring = new Array<T | undefined>(RING_SIZE).fill(undefined);
  /**
   * The ring holds ids in [base, end); every other slot is empty. Ids below base that are still
   * here are in `old`.
   */
  private base = 0;
  private end = 0;
  private readonly old = new Map<number, T>();

  get(id: number): T | undefined {
    return id >= this.base && id < this.end ? this.ring[id & MASK] : this.old.get(id);
  }

  /** Adds `id` (not present). */
  set(id: number, value: T): void {
    if (id < this.base) {
      this.old.set(id, value); // older than the ring
      return;
    }
    if (this.base === this.end) this.base = this.end = id; // an empty ring starts at id
    while (id - this.base >= RING_SIZE) this.evictBase();
    this.ring[id & MASK] = value;
    if (id >= this.end) this.end = id + 1;
  }

  delete(id: number): void {
    if (id < this.base || id >= this.end) {
      this.old.delete(id);
      return;
    }
    this.ring[id & MASK] = undefined;
    while (this.base < this.end && this.ring[this.base & MASK] === undefined) this.base++;
  }

  /** The oldest id of the ring leaves it (to `old` if it is still here): room for a newer one. */
  private evictBase(): void {
    const v = this.ring[this.base & MASK];
    if (v !== undefined) {
      this.old.set(this.base, v);
      this.ring[this.base & MASK] = undefined;
    }
    this.base++;
  }
}
