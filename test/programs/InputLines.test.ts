/** The lines `cxlog publish` reads: split at `\n` (with a `\r` before it), across chunks, bytes kept as they are. */
import { describe, expect, it } from "@effect/vitest"
import { inputLines } from "../../src/programs/roles/InputLines.js"

async function* chunks(...parts: ReadonlyArray<string | Uint8Array>) {
  yield* parts
}

const collect = async (input: AsyncIterable<Uint8Array | string>) => {
  const lines: Array<Array<number>> = []
  for await (const line of inputLines(input)) lines.push([...line])
  return lines
}

const bytes = (text: string) => [...Buffer.from(text)]

describe("inputLines", () => {
  it("splits at newlines across chunks, a CRLF as one, an empty line kept, a last line without a newline counted", async () => {
    expect(await collect(chunks("a\r", "\nb", "c\n\n", "d"))).toEqual([bytes("a"), bytes("bc"), [], bytes("d")])
  })

  it("keeps bytes that are not UTF-8 as they are", async () => {
    expect(await collect(chunks(new Uint8Array([0xff, 0xfe, 0x00, 0x61, 0x0a, 0xe9])))).toEqual([
      [0xff, 0xfe, 0x00, 0x61],
      [0xe9]
    ])
  })

  it("gives nothing for no input, and one empty line for a lone newline", async () => {
    expect(await collect(chunks())).toEqual([])
    expect(await collect(chunks("\n"))).toEqual([[]])
  })
})
