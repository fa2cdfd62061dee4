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

/**
 * The lines of `input` (standard input) for a reader that may stop before its end, a signal
 * stopping the command: stopping destroys `input` first. An async generator that waits for input
 * takes its return() only once that input comes, and the stream reading it awaits the return(),
 * so `cxlog publish` on a pipe that stays open (`tail -f app.log | cxlog publish`) took no SIGTERM
 * until its input's next line or end.
 */
export const stoppableLines = (input: NodeJS.ReadableStream & { destroy: () => void }): AsyncIterable<Uint8Array> => ({
  [Symbol.asyncIterator]: () => {
    const lines = inputLines(input)
    return {
      next: () => lines.next(),
      return: () => {
        input.destroy()
        return lines.return(undefined)
      }
    }
  }
})
