/**
 * What a reader at another site decodes from a mirrored message's `Cxlog-*` headers
 * (readMirrored): an empty key is a key, told apart from none.
 */
import { describe, expect, it } from "@effect/vitest"
import { headers } from "@nats-io/transport-node"
import { readMirrored } from "../../src/layers/mirror/MirrorRecord.js"
import { MirrorHeaders } from "../../src/services/mirror/Mirror.js"

const mirrored = (key: string | undefined) => {
  const h = headers()
  h.set(MirrorHeaders.msgId, "1/m/2/0")
  h.set(MirrorHeaders.offset, "0")
  h.set(MirrorHeaders.timestamp, "1700000000000")
  if (key !== undefined) h.set(MirrorHeaders.key, key)
  return readMirrored({ seq: 1, data: new Uint8Array([1]), headers: h })
}

describe("readMirrored", () => {
  it("an empty key reads as an empty key, no key as none", () => {
    const empty = mirrored("")
    expect(empty).toMatchObject({ offset: 0, msgId: "1/m/2/0" })
    expect(empty.key).toBeInstanceOf(Uint8Array)
    expect(empty.key).toHaveLength(0)
    expect(mirrored(undefined).key).toBeUndefined()
    expect(Buffer.from(mirrored("user-1").key!).toString()).toBe("user-1")
  })
})
