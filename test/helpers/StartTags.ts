/**
 * Start tags as a live process's would read (region/ProcessInfo.ts), and tags another process under
 * the same pid (one started at another time) would carry: for tests of pid reuse without reusing a pid.
 */
import { expect } from "vitest"
import { shortStartTag, startTagOf as tagFromProc } from "../../src/layers/region/ProcessInfo.js"

/** The 32-bit start tag of the live process `pid`, from /proc now (a test of tags needs one). */
export const startTagOf = (pid: number): number => {
  const tag = tagFromProc(pid)
  expect(tag, `/proc/${pid}/stat`).toBeGreaterThan(0)
  return tag
}

/** The 16 bits of it a participant line's occurrence or a consumer's member word carries. */
export const shortTagOf = (pid: number): number => shortStartTag(startTagOf(pid))

/** A 16-bit tag other than `tag`: a later process's under the same pid. */
export const laterShortTag = (tag: number): number => (tag === 0xffff ? 1 : tag + 1)

/** A 32-bit tag other than `tag`: a later process's under the same pid. */
export const laterStartTag = (tag: number): number => (tag === 2 ** 32 - 1 ? 1 : tag + 1)
