/**
 * How a role process talks to the `cxlog run` / `cxlog bench` orchestrator that forked it:
 * structured events over the IPC channel. A process with no parent channel reports nothing.
 * When the parent goes away, the child stops itself so its finalizers run (unmap, leave).
 */
import { Schema } from "effect"

/** Any role's event: its kind and its fields (what each kind carries: RoleEvents.ts). */
export const RoleEvent = Schema.Struct(
  { event: Schema.String },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
)
export type RoleEvent = typeof RoleEvent.Type

export const report = (event: RoleEvent): void => {
  // With a callback a send to a parent that just died (EPIPE) is dropped; without one it is an
  // 'error' event on process, uncaught, ending the role before its finalizers. The channel's
  // 'disconnect' follows and stops the role (exitWithParent).
  if (process.send !== undefined && process.connected) process.send(event, undefined, undefined, () => {})
}

/**
 * Whether the orchestrator has sent `{ event }` yet. The listener holds the IPC channel open,
 * so it is removed once the event came, or by `close`.
 */
export const parentEvent = (event: string): { readonly said: () => boolean; readonly close: () => void } => {
  let said = false
  const listener = (message: unknown) => {
    if ((message as RoleEvent | undefined)?.event !== event) return
    said = true
    process.off("message", listener)
  }
  if (process.send !== undefined) process.on("message", listener)
  return { said: () => said, close: () => void process.off("message", listener) }
}

/**
 * Tells the orchestrator why this role is failing: `{ event: "failed", error }` with the
 * error's tag, message and fields, so it can name the typed error rather than only an exit code.
 */
export const reportFailure = (error: unknown): void => {
  const fields = typeof error === "object" && error !== null ? { ...error } : {}
  const tag = (error as { _tag?: unknown } | null)?._tag
  const named = {
    _tag: typeof tag === "string" ? tag : "Error",
    message: error instanceof Error ? error.message : String(error)
  }
  try {
    report({ event: "failed", error: { ...fields, ...named } })
  } catch {
    // a field the channel cannot carry: the tag and message still can
    report({ event: "failed", error: named })
  }
}

/**
 * Children of an orchestrator end (with finalizers) when the orchestrator disappears, also when
 * it disappeared before this was called (a role SIGKILLed with its parent while starting).
 */
export const exitWithParent = (): void => {
  if (process.send === undefined) return
  if (!process.connected) process.kill(process.pid, "SIGTERM")
  else process.once("disconnect", () => process.kill(process.pid, "SIGTERM"))
}

/**
 * Output nobody reads any more (a dead parent's pipe, `| head -1`) is dropped rather than
 * failing the process: Node reports EPIPE as an 'error' event on process.stdout or stderr, which
 * with no listener is an uncaught exception that ends the process before its finalizers unmap
 * the region and remove its FIFOs and credential files. A write's own callback still gets the
 * error, for a command whose output is its result (`cxlog subscribe`).
 */
export const tolerateClosedOutput = (): void => {
  for (const stream of [process.stdout, process.stderr]) stream.on("error", () => {})
}
