/** `cxlog regions`: the regions under /dev/shm listed, one removed by name, or the leftovers pruned (RegionPrune.ts). */
import { Console, Effect } from "effect"
import { table } from "../report/Table.js"
import {
  ABANDONED_AFTER_MS,
  isNeverMadeLeft,
  isOrphanedRun,
  pruneAbandonedRegions,
  pruneRunRegions,
  pruneStaleCredentials
} from "./RegionPrune.js"
import { inspectRegion, listRegions, RegionNotFound, removeRegion, SHM_DIR } from "./Regions.js"

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`

export interface RegionsOptions {
  readonly remove?: string
  /** List this region's processes. */
  readonly processes?: string
  readonly prune: boolean
  readonly json: boolean
}

/** `cxlog regions [--remove NAME | --prune] [--json]`. */
export const regions = (options: RegionsOptions) =>
  Effect.gen(function*() {
    if (options.remove !== undefined) {
      const info = yield* removeRegion(options.remove)
      yield* options.json
        ? Console.log(JSON.stringify({ removed: [info] }))
        : Console.log(`removed ${info.name} (${mib(info.bytes)}, ${info.orderedMessages} ordered messages)`)
      return
    }
    if (options.processes !== undefined) {
      const info = yield* inspectRegion(options.processes)
      if (info === undefined) return yield* new RegionNotFound({ region: options.processes })
      if (options.json) return yield* Console.log(JSON.stringify(info.processes))
      return yield* Console.log(
        table(
          ["slot", "pid", "role", "alive", "name", "supervisor", "restarts"],
          info.processes.map((p) => [
            String(p.slot),
            String(p.pid),
            p.role,
            p.stopped === true ? "stopped" : p.alive ? "yes" : "no",
            p.name ?? "-",
            p.supervisor === undefined ? "-" : String(p.supervisor),
            p.restarts === undefined ? "-" : String(p.restarts)
          ])
        )
      )
    }
    if (options.prune) {
      const removed = yield* pruneRunRegions
      const abandoned = yield* pruneAbandonedRegions
      const credentials = pruneStaleCredentials()
      const nowMs = Date.now()
      yield* options.json
        ? Console.log(JSON.stringify({
          removed: [...removed, ...abandoned.removed],
          removedCredentials: credentials,
          neverMadeKept: abandoned.recent.map((r) => r.name)
        }))
        : Console.log([
          ...(removed.length + abandoned.removed.length + abandoned.recent.length === 0
            ? ["no orphaned run regions, no regions never made"]
            : []),
          ...removed.map((r) => `removed ${r.name} (${mib(r.bytes)}; its run, pid ${r.owner.pid}, is gone)`),
          ...abandoned.removed.map((r) => `removed ${r.name} (${mib(r.bytes)}; never made: its creator stopped first)`),
          ...abandoned.recent.map((r) =>
            `left ${r.name}: never made, but its file changed ${
              Math.round((nowMs - (r.changedAtMs ?? nowMs)) / 1000)
            } s ago (a creator may be making it); --prune takes it once it is ${
              ABANDONED_AFTER_MS / 1000
            } s old, --remove ${r.name} at once`
          ),
          ...credentials.map((name) => `removed the credential files of ${name} (that region is gone)`)
        ].join("\n"))
      return
    }
    const found = yield* listRegions
    if (options.json) return yield* Console.log(JSON.stringify(found))
    if (found.length === 0) return yield* Console.log(`no cxlog regions in ${SHM_DIR}`)
    yield* Console.log(
      table(
        [
          "region",
          "size",
          "in memory",
          "kind",
          "owner pid",
          "owner alive",
          "in use",
          "ordered messages",
          "created",
          "note"
        ],
        found.map((r) => [
          r.name,
          mib(r.bytes),
          mib(r.residentBytes),
          r.kind,
          r.owner.pid === 0 ? "-" : String(r.owner.pid),
          r.owner.alive ? "yes" : "no",
          r.inUse
            ? "yes"
            : isOrphanedRun(r)
            ? "no (orphaned: --prune)"
            : isNeverMadeLeft(r)
            ? "no (never made: --prune)"
            : "no",
          String(r.orderedMessages),
          r.createdAtMs === 0 ? "-" : new Date(r.createdAtMs).toISOString(),
          r.note === undefined ? "" : r.note.length > 60 ? `${r.note.slice(0, 57)}...` : r.note
        ])
      )
    )
  })
