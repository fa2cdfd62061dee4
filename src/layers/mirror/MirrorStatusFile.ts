/**
 * Where a mirror leaves its state for `cxlog topics` on the same host: one JSON file per
 * (region, topic, stream) in this user's private directory, replaced whole (write, rename) at
 * every status. It outlives the process, so a mirror that stopped (behind retention, fenced,
 * gave up, was stopped) still says why; a running state whose process is gone reads as gone: the
 * process died without saying so (SIGKILL, a crash). The file names the process by its pid and
 * start time, so a later process that took the pid over is not taken for the mirror.
 */
import { Either, Schema } from "effect"
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { MirrorStatus } from "../../services/mirror/Mirror.js"
import { MIRROR_SETTINGS } from "../../services/mirror/MirrorSettings.js"
import { readSetting, xdgRuntimeDir } from "../../Settings.js"
import { isProcessAlive, ownStartTag, startTagOf } from "../region/ProcessInfo.js"

/** `CXLOG_MIRROR_STATUS_DIR`, else `$XDG_RUNTIME_DIR/cxlog/mirrors`, else `<tmp>/cxlog-mirrors-<uid>`. */
export const mirrorStatusDirectory = (): string => {
  const override = readSetting(MIRROR_SETTINGS.settings.statusDir)
  if (override !== undefined) return override
  const runtime = xdgRuntimeDir()
  return runtime !== undefined
    ? join(runtime, "cxlog", "mirrors")
    : join(tmpdir(), `cxlog-mirrors-${process.getuid?.() ?? 0}`)
}

const safe = (text: string) => text.replace(/[^A-Za-z0-9._-]/g, "_")
const fileName = (s: { readonly regionId: string; readonly topic: string; readonly stream: string }) =>
  `${safe(s.regionId)}.${safe(s.topic)}.${safe(s.stream)}.json`

/**
 * A status as its file holds it: with the start tag of the process `pid` names (ProcessInfo.ts;
 * 0 where /proc gives none). A file an older build wrote has none: its pid alone decides.
 */
const StatusFile = Schema.Struct({ ...MirrorStatus.fields, startTag: Schema.optional(Schema.Number) })

const encode = Schema.encodeSync(StatusFile)
const decode = Schema.decodeUnknownEither(Schema.parseJson(StatusFile))

/** Writes the status of the mirror this process runs (`status.pid`, this process). */
export const writeMirrorStatus = (status: MirrorStatus): void => {
  const dir = mirrorStatusDirectory()
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const path = join(dir, fileName(status))
  const temporary = `${path}.${process.pid}.tmp`
  const startTag = status.pid === process.pid ? ownStartTag() : startTagOf(status.pid)
  writeFileSync(temporary, JSON.stringify(encode({ ...status, startTag })), { mode: 0o600 })
  renameSync(temporary, path)
}

/** The mirrors of region `regionId` this host knows of; a running state whose process is gone (dead, or its pid another's) reads as gone. */
export const readMirrorStatuses = (regionId: string): ReadonlyArray<MirrorStatus> => {
  const dir = mirrorStatusDirectory()
  let names: Array<string>
  try {
    names = readdirSync(dir)
  } catch {
    return []
  }
  const prefix = `${safe(regionId)}.`
  const found: Array<MirrorStatus> = []
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith(".json")) continue
    let text: string
    try {
      text = readFileSync(join(dir, name), "utf8")
    } catch {
      continue
    }
    const file = decode(text)
    if (Either.isLeft(file) || file.right.regionId !== regionId) continue
    const { startTag, ...fields } = file.right
    const s = new MirrorStatus(fields)
    const running = s.state === "starting" || s.state === "mirroring" || s.state === "mirror-unavailable"
    // A mirror that stops writes so itself: one whose file still says it runs died without a word
    // (its pid gone, or another process's now).
    found.push(
      running && !isProcessAlive(s.pid, startTag ?? 0)
        ? new MirrorStatus({
          ...s,
          state: "gone",
          detail: `process ${s.pid} ended without stopping the mirror (killed, or crashed) while ${s.state}`
        })
        : s
    )
  }
  return found
}

/** Removes region `regionId`'s status files (the region was removed: its id is never seen again). */
export const removeMirrorStatuses = (regionId: string): void => {
  const dir = mirrorStatusDirectory()
  let names: Array<string> = []
  try {
    names = readdirSync(dir)
  } catch {
    return
  }
  for (const name of names) if (name.startsWith(`${safe(regionId)}.`)) rmSync(join(dir, name), { force: true })
}
