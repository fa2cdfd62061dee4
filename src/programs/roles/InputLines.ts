/**
 * The lines `cxlog publish` reads from standard input, as bytes: a line ends at `\n` (a `\r`
 * before it goes with it), a last line without one counts, and nothing is decoded — bytes that
 * are not UTF-8 (Latin-1 text, binary records) are published as they are, not replaced.
 */
export async function* inputLines(input: AsyncIterable<Uint8Array | string>): AsyncGenerator<Uint8Array> {
  let rest: Buffer = Buffer.alloc(0)
  for await (const chunk of input) {
    const bytes = typeof chunk === "string"
      ? Buffer.from(chunk)
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length)
    const data = rest.length === 0 ? bytes : Buffer.concat([rest, bytes])
    let start = 0
    for (let end = data.indexOf(10, start); end !== -1; end = data.indexOf(10, start)) {
      yield data.subarray(start, end > start && data[end - 1] === 13 ? end - 1 : end)
      start = end + 1
    }
    rest = data.subarray(start)
  }
  if (rest.length > 0) yield rest
}
