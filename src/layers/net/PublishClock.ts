/**
 * The clock a publisher stamps messages with as they are published. `Date.now()` costs about 40 ns
 * on a VM (its clock read is a call into V8's runtime), as much as the rest of taking a message
 * into a batch, so it is read once for up to `STAMPS_PER_READ` messages published in one synchronous
 * run of code, and that reading is forgotten when the run ends (a microtask): a message published
 * after any wait — I/O, a timer, an `await` — reads the clock afresh. A message therefore carries
 * the time of at most the `STAMPS_PER_READ - 1` messages published just before it in the same run
 * (microseconds apart in a publishing loop); docs/clients.md says so. One clock for the process:
 * every publisher's messages of a run share a reading.
 */

/** Messages stamped with one reading of the clock, at most. */
export const STAMPS_PER_READ = 16

let readingMs = 0
let stampsLeft = 0
let forgetQueued = false

const forget = () => {
  stampsLeft = 0
  forgetQueued = false
}

/** Milliseconds since the epoch, for a message published now. */
export const publishClock = (): number => {
  if (stampsLeft > 0) {
    stampsLeft--
    return readingMs
  }
  readingMs = Date.now()
  stampsLeft = STAMPS_PER_READ - 1
  if (!forgetQueued) {
    forgetQueued = true
    queueMicrotask(forget)
  }
  return readingMs
}
