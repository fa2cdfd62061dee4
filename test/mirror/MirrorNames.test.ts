/** The named consumer a mirror reads as by default fits a consumer name (24 bytes), whatever the stream's name. */
import { describe, expect, it } from "vitest"
import { defaultConsumerName, defaultStreamName } from "../../src/programs/roles/Mirror.js"

describe("a mirror's default names", () => {
  it("short streams keep mirror-STREAM; long ones are shortened with a hash, still apart", () => {
    expect(defaultConsumerName(defaultStreamName("events"))).toBe("mirror-cxlog-events")
    const a = defaultConsumerName(defaultStreamName("orders.europe.west"))
    const b = defaultConsumerName(defaultStreamName("orders.europe.east"))
    expect(Buffer.byteLength(a)).toBeLessThanOrEqual(24)
    expect(Buffer.byteLength(b)).toBeLessThanOrEqual(24)
    expect(a).not.toBe(b)
    expect(a.startsWith("mirror-cxlog-or")).toBe(true)
  })
})
