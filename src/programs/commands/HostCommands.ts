/** The commands about this host: its regions (`regions`) and whether it can run cxlog (`selfcheck`). */
import { Effect } from "effect"
import * as Cli from "../cli/CliKit.js"
import { cliEntry } from "../ProgramSettings.js"
import { json } from "./SharedFlags.js"

const cliPath = cliEntry()

export const regionsCommand = Cli.command({
  name: "regions",
  summary: "List the cxlog regions in /dev/shm (size, owner, whether it runs); remove or prune them",
  flags: {
    remove: Cli.optionalText("remove", {
      placeholder: "NAME",
      shown: "none",
      description:
        "remove this region and its default credential files (refused while a live process uses it; its data is lost)"
    }),
    processes: Cli.optionalText("processes", {
      placeholder: "NAME",
      shown: "none",
      description:
        "list this region's processes: slot, pid, role, whether it runs, and the name, supervisor and restarts of a supervised child"
    }),
    prune: Cli.toggle("prune", {
      description:
        "remove every orphaned region of a `cxlog run` or bench (its process gone, nothing using it), every region never made that was left a minute, and the default credential files of regions that are gone"
    }),
    json
  },
  examples: [
    "cxlog regions",
    "cxlog regions --processes prices",
    "cxlog regions --remove orders",
    "cxlog regions --prune"
  ],
  run: (o) =>
    Cli.load(() => import("../admin/RegionsCommand.js")).pipe(Effect.flatMap(({ regions }) =>
      regions({
        ...(o.remove === undefined ? {} : { remove: o.remove }),
        ...(o.processes === undefined ? {} : { processes: o.processes }),
        prune: o.prune,
        json: o.json
      })
    ))
})

export const selfcheckCommand = Cli.command({
  name: "selfcheck",
  summary: "Check this host: create a region, attach it from a second process, exchange a value and doorbell wakes",
  flags: {
    dir: Cli.optionalText("dir", {
      placeholder: "DIR",
      shown: "none",
      description:
        "make the check's region in this directory, where regions named by a path live (a tmpfs mounted huge=within_size, say); default /dev/shm"
    }),
    peer: Cli.optionalText("peer", { hidden: true, description: "run as the attaching peer of this region" })
  },
  examples: ["cxlog selfcheck", "cxlog selfcheck --dir /mnt/cxlog"],
  run: ({ dir, peer }) =>
    Cli.load(() => import("../admin/SelfCheck.js")).pipe(
      Effect.flatMap((m) => (peer === undefined ? m.selfCheck(cliPath, [], dir) : m.selfCheckPeer(peer)))
    )
})
