/**
 * What a process pays the first time it reads each page of a region it mapped, against reading
 * it again. On most hosts that is a minor fault now and then (the kernel maps pages around the
 * one touched); under a hypervisor that shadows each process's page tables (PVM, nested
 * virtualization without EPT) every process traps to the hypervisor once for every page it
 * touches, which costs microseconds a 4 KiB page. Every process that reads the log pays it once
 * for each page it reads — a broker copying a topic, each consumer-group member — and with 2 MiB
 * pages it traps far less often (docs/operations.md, "Huge pages for the region"), so
 * `cxlog selfcheck` measures it in a process that has just mapped the region.
 */

/** The unit the figures are given in, whatever the region's pages are. */
export const TOUCH_UNIT_BYTES = 4096

/** The byte written at the start of each unit of a check area: every unit's differs from its neighbours'. */
const touchPattern = (unit: number): number => (unit * 7 + 1) & 0xff

/** Writes `touchPattern` at the start of each unit of [offset, offset + length). */
export const writeTouchPattern = (bytes: Uint8Array, offset: number, length: number): void => {
  for (let unit = 0; unit * TOUCH_UNIT_BYTES < length; unit++) {
    bytes[offset + unit * TOUCH_UNIT_BYTES] = touchPattern(unit)
  }
}

/** Reads the first byte of each unit of [offset, offset + length), in order; returns their sum and the ns it took. */
export const touchUnits = (bytes: Uint8Array, offset: number, length: number): { sum: number; ns: number } => {
  const started = process.hrtime.bigint()
  let sum = 0
  for (let at = offset; at < offset + length; at += TOUCH_UNIT_BYTES) sum = (sum * 31 + bytes[at]!) >>> 0
  return { sum, ns: Number(process.hrtime.bigint() - started) }
}

/** A fresh mapping's first read of an area and its second, in ns a 4 KiB unit, with the first read's sum. */
export interface PageTouchCost {
  readonly units: number
  readonly firstNsPerUnit: number
  readonly againNsPerUnit: number
  readonly sum: number
}

/** Passes over another area first, so that V8 compiles the loop there and not inside a timed pass. */
const WARM_UP_PASSES = 8
const AGAIN_PASSES = 3

/**
 * Reads the area twice, before anything else of this process read it; `warm` is another area of
 * the same bytes (already mapped) the loop runs over first.
 */
export const pageTouchCost = (
  bytes: Uint8Array,
  area: { readonly offset: number; readonly length: number },
  warm: { readonly offset: number; readonly length: number }
): PageTouchCost => {
  for (let pass = 0; pass < WARM_UP_PASSES; pass++) touchUnits(bytes, warm.offset, warm.length)
  const units = Math.ceil(area.length / TOUCH_UNIT_BYTES)
  const first = touchUnits(bytes, area.offset, area.length)
  // The quickest of a few: a pass the scheduler interrupted says nothing of the pages.
  let againNs = Infinity
  for (let pass = 0; pass < AGAIN_PASSES; pass++) {
    againNs = Math.min(againNs, touchUnits(bytes, area.offset, area.length).ns)
  }
  return { units, firstNsPerUnit: first.ns / units, againNsPerUnit: againNs / units, sum: first.sum }
}

/** A first read dearer than this a 4 KiB unit is the hypervisor's trap, not the kernel's fault around. */
const TRAPPING_NS_PER_UNIT = 1000

const micros = (ns: number) => (ns / 1000).toFixed(ns < 100 ? 3 : 2)

/** One phrase for `cxlog selfcheck`: the two figures, and what to do when the first is the hypervisor's. */
export const describePageTouch = (cost: PageTouchCost, huge: boolean | undefined): string => {
  const figures = `first read ${micros(cost.firstNsPerUnit)} µs a 4 KiB page, again ${
    micros(cost.againNsPerUnit)
  } µs (${cost.units} pages, in a process that had just mapped the region)`
  if (cost.firstNsPerUnit < TRAPPING_NS_PER_UNIT) return figures
  return huge === true
    ? `${figures}: each process pays that once for each page of the log it reads`
    : `${figures}: each process pays that once for each page of the log it reads; 2 MiB pages cut it ` +
      `(docs/operations.md, "Huge pages for the region")`
}
