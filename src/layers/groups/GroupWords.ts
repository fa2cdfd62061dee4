/**
 * A group's words in the region, read and written as every process of the region does: the
 * shared ones through `Atomics` (32- and 64-bit, compare-and-swap where several processes may
 * race), a record's plain fields (f64 offsets and times) as typed-array loads and stores that
 * the atomic store after them publishes. Offsets are absolute; a group's are checked against its
 * extent once, when it is opened (GroupLayout.ts), so none here is checked again.
 */
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import { wordsOver } from "../region/Words64.js"

export class GroupWords {
  private readonly words: BigUint64Array
  constructor(readonly region: CxlMemoryShape) {
    this.words = wordsOver(region.u32)
  }

  load32(at: number): number {
    return Atomics.load(this.region.u32, at >> 2)
  }
  store32(at: number, value: number): void {
    Atomics.store(this.region.u32, at >> 2, value)
  }
  cas32(at: number, expected: number, replacement: number): boolean {
    return Atomics.compareExchange(this.region.u32, at >> 2, expected, replacement) === expected
  }
  add32(at: number, value: number): number {
    return Atomics.add(this.region.u32, at >> 2, value)
  }

  load64(at: number): bigint {
    return Atomics.load(this.words, at / 8)
  }
  store64(at: number, value: bigint): void {
    Atomics.store(this.words, at / 8, value)
  }
  cas64(at: number, expected: bigint, replacement: bigint): boolean {
    return Atomics.compareExchange(this.words, at / 8, expected, replacement) === expected
  }
  add64(at: number, value: number): void {
    Atomics.add(this.words, at / 8, BigInt(value))
  }
  /** Raises the 64-bit word at `at` to `value` unless it holds more already; the value it holds after. */
  raise64(at: number, value: number): number {
    const wanted = BigInt(value)
    for (;;) {
      const now = Atomics.load(this.words, at / 8)
      if (now >= wanted || Atomics.compareExchange(this.words, at / 8, now, wanted) === now) {
        return Number(now >= wanted ? now : wanted)
      }
    }
  }
  /** A 64-bit counter or frontier as a number (they stay below 2^53). */
  number64(at: number): number {
    return Number(Atomics.load(this.words, at / 8))
  }

  f64(at: number): number {
    return this.region.f64[at / 8]!
  }
  setF64(at: number, value: number): void {
    this.region.f64[at / 8] = value
  }
}
