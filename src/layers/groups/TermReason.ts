/**
 * A `term` reason as every member keeps it: its first TERM_REASON_MAX_CHARS characters, and no
 * more than TERM_REASON_MAX_JSON_BYTES once JSON-encoded. A member through a broker sends it in
 * a settle request, which must stay within a GROUP_REQUEST's 4 KiB whatever the text (a control
 * character takes six bytes as JSON); a local member cuts it alike, so a dead letter says the
 * same wherever its member ran.
 */
export const TERM_REASON_MAX_CHARS = 1000
export const TERM_REASON_MAX_JSON_BYTES = 3000

const jsonBytes = (text: string) => Buffer.byteLength(JSON.stringify(text))

/** Whether cutting before `at` would split a surrogate pair (an emoji, say). */
const splitsPair = (text: string, at: number) => {
  const code = text.charCodeAt(at - 1)
  return code >= 0xd800 && code <= 0xdbff
}

/**
 * `given` as that text. A JavaScript caller's reason need not be a string (`job.term(error)` in a
 * catch): an Error says its message and anything else what `String` makes of it, where cutting it
 * threw a TypeError at the call, out of a method that returns a Promise.
 */
export const termReason = (given: unknown): string => {
  const reason = typeof given === "string" ? given : given instanceof Error ? given.message : String(given)
  let fits = Math.min(reason.length, TERM_REASON_MAX_CHARS)
  if (fits === reason.length && jsonBytes(reason) <= TERM_REASON_MAX_JSON_BYTES) return reason
  if (jsonBytes(reason.slice(0, fits)) > TERM_REASON_MAX_JSON_BYTES) {
    // The longest prefix within the bytes: a JSON encoding only grows with the prefix.
    let low = 0
    let high = fits
    while (low < high) {
      const mid = Math.ceil((low + high) / 2)
      if (jsonBytes(reason.slice(0, mid)) <= TERM_REASON_MAX_JSON_BYTES) low = mid
      else high = mid - 1
    }
    fits = low
  }
  return reason.slice(0, splitsPair(reason, fits) ? fits - 1 : fits)
}
