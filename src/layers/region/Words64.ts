/**
 * A region's memory as 64-bit words, for the records whose two 32-bit fields are claimed or moved
 * together by one compare-and-swap (little-endian: the field at the lower offset is the low half).
 */

/** The 64-bit view over the same memory as `u32`, made once per array. */
const viewsOf = new WeakMap<Uint32Array, BigUint64Array>()
export const wordsOver = (u32: Uint32Array): BigUint64Array => {
  let words = viewsOf.get(u32)
  if (words === undefined) {
    // Not `>>> 3`: 4 GiB or more would wrap to a view of no words.
    words = new BigUint64Array(u32.buffer, u32.byteOffset, Math.floor(u32.byteLength / 8))
    viewsOf.set(u32, words)
  }
  return words
}

/** The word two 32-bit fields make: `low` at the lower offset. */
export const pairWord = (low: number, high: number): bigint => BigInt(low >>> 0) | (BigInt(high >>> 0) << 32n)
/** The field at the lower offset, unsigned (`| 0` for a signed one). */
export const lowHalf = (word: bigint): number => Number(word & 0xffffffffn)
/** The field at the higher offset, unsigned. */
export const highHalf = (word: bigint): number => Number(word >> 32n)
