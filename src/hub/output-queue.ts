// The guest's output stream as the hub keeps it: bytes from the slowest member's position up
// to the newest byte. Offsets are absolute (bytes since the hub was made), so a member's
// progress is one number. Storage is a list of fixed-size blocks that chunks are copied into:
// a console sends many tiny chunks, and a stalled member may keep a megabyte of them.
const BLOCK = 64 * 1024;

export class OutputQueue {
  #blocks: Buffer[] = [];
  /** Absolute index of #blocks[0] (block k covers offsets [k*BLOCK, (k+1)*BLOCK)). */
  #first = 0;
  #head = 0;

  /** Offset one past the newest byte: the total the guest has sent. */
  get head(): number {
    return this.#head;
  }

  /** The oldest offset still held (the head when nothing is). */
  get start(): number {
    return this.#blocks.length > 0 ? Math.min(this.#head, this.#first * BLOCK) : this.#head;
  }

  /** Bytes held in memory (whole blocks). */
  get held(): number {
    return this.#blocks.length * BLOCK;
  }

  push(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length;) {
      const at = this.#head % BLOCK;
      if (at === 0 || this.#blocks.length === 0) {
        if (this.#blocks.length === 0) this.#first = Math.floor(this.#head / BLOCK);
        this.#blocks.push(Buffer.allocUnsafe(BLOCK));
      }
      const n = Math.min(chunk.length - i, BLOCK - at);
      this.#blocks[this.#blocks.length - 1]!.set(chunk.subarray(i, i + n), at);
      i += n;
      this.#head += n;
    }
  }

  /** The bytes from `pos` to the end of its block (or the head): what one write can take. */
  view(pos: number): Buffer {
    const k = Math.floor(pos / BLOCK);
    const block = this.#blocks[k - this.#first];
    if (!block || pos >= this.#head) throw new RangeError(`output offset ${pos} not held (head ${this.#head})`);
    const start = k * BLOCK;
    return block.subarray(pos - start, Math.min(BLOCK, this.#head - start));
  }

  /** Release blocks that every member is past. */
  trim(upTo: number): void {
    const keepFrom = Math.floor(upTo / BLOCK);
    const drop = Math.min(this.#blocks.length, keepFrom - this.#first);
    if (drop > 0) {
      this.#blocks.splice(0, drop);
      this.#first += drop;
    }
    // Keep the half-filled head block, which push() appends to.
  }
}
