/**
 * Named objects of a region damaged in place, as a user meets them through the CLI (a real head):
 * a topic whose descriptor and a consumer group whose header no longer read as theirs are said,
 * never left out of a listing in silence nor taken for unknown names, and deleting them (on the
 * region's host, or a group through a broker: `cxlog groups --brokers`) frees their names for new ones;
 * so is a topic whose directory entry itself is damaged but still says its name, and one whose name
 * cannot be read either is said by its entry's slot. Six tests over one cluster, in order, each a few
 * CLI runs: as one test its 37 runs one after another outlasted the 60 s bound on a slow, busy machine.
 */
import { expect } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { join } from "node:path"
import * as DirectoryLayers from "../../src/layers/region/Directory.js"
import { EntryView } from "../../src/layers/region/DirectoryRecords.js"
import { attachRegion } from "../../src/layers/Roles.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { Directory, type ObjectKind } from "../../src/services/region/Directory.js"
import { RegionLayout } from "../../src/services/RegionLayout.js"
import { forkCli, runCliWithin, smallRegionEnvFor } from "../helpers/CliRoles.js"
import { tempDir, uniqueRegion } from "../helpers/Processes.js"
import { sharedLayer } from "../helpers/SharedLayer.js"

/** Runs `change` from a process attached to `region`, with its directory. */
const inRegion = <A, E>(region: string, change: Effect.Effect<A, E, CxlMemory | Directory | RegionLayout>) =>
  change.pipe(
    Effect.provide(
      Layer.unwrapEffect(Effect.map(RegionLayout, (layout) => DirectoryLayers.layer(layout.directory))).pipe(
        Layer.provideMerge(attachRegion({ name: region }))
      )
    ),
    Effect.scoped
  )

/** Adds `delta` to the 32-bit word `at` bytes into object (kind, name)'s extent, from a process attached to `region`. */
const scribble = (region: string, kind: ObjectKind, name: string, at: number, delta: number) =>
  inRegion(
    region,
    Effect.gen(function*() {
      const memory = yield* CxlMemory
      const found = yield* (yield* Directory).lookup(kind, name)
      memory.u32[(found.extent.offset + at) / 4]! += delta
    })
  )

/**
 * Sets topic `name`'s directory entry's kind out of range (its name still readable), or its name's length
 * (`nameless`: nothing says whose it is): its slot.
 */
const breakTopicEntry = (region: string, name: string, nameless = false) =>
  inRegion(
    region,
    Effect.gen(function*() {
      const found = yield* (yield* Directory).lookup("topic", name)
      const { directory } = yield* RegionLayout
      const entries = new EntryView(yield* CxlMemory)
      if (nameless) entries.setNameBytes(directory.entry(found.slot), 100_000)
      else entries.setKind(directory.entry(found.slot), 99)
      return found.slot
    })
  )

/** A head, a broker, a user who may read jobs, and topic "lost" and groups "broken" and "worn" damaged in place. */
class DamagedCluster extends Context.Tag("test/DamagedCluster")<DamagedCluster, {
  readonly region: string
  readonly port: number
  readonly viewerSecret: string
  /** Runs the CLI against the cluster's region. */
  readonly cli: (...args: ReadonlyArray<string>) => ReturnType<typeof runCliWithin>
}>() {}

const damagedCluster = Layer.scoped(
  DamagedCluster,
  Effect.gen(function*() {
    const region = yield* uniqueRegion("corrupt-objects")
    const env: Record<string, string> = { ...smallRegionEnvFor(1), CXLOG_REGION: region }
    const head = yield* forkCli(["head", "--topic", "jobs", "--topic", "lost"], env)
    yield* head.event("ready")
    const cli = (...args: ReadonlyArray<string>) => runCliWithin(args, env, 30_000)
    const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
    const port = (yield* broker.event("listening"))["port"] as number
    const viewerSecret = join(yield* tempDir("cxlog-corrupt-users-"), "viewer.secret")
    expect((yield* cli("user", "add", "viewer", "--read", "jobs", "--secret-file", viewerSecret)).code).toBe(0)
    for (const group of ["broken", "sound", "worn"]) {
      expect((yield* cli("groups", "create", group, "--topic", "jobs")).code).toBe(0)
    }
    // The descriptor's order word (offset 4) and the groups' layout version (offset 4) as no build writes them.
    yield* scribble(region, "topic", "lost", 4, 100)
    yield* scribble(region, "group", "broken", 4, 100)
    yield* scribble(region, "group", "worn", 4, 100)
    return { region, port, viewerSecret, cli }
  })
)

const topicWhy =
  `topic "lost" cannot be read: its descriptor \\(directory entry \\d+\\) is corrupt; deleting the topic frees its name and memory`
const groupWhyAs = (name: string, remedy: string) =>
  `consumer group "${name}" cannot be read: its layout version is 102, this build reads 2; delete it \\(${remedy}\\) and create it again`
const groupWhy = groupWhyAs("broken", "cxlog groups delete broken")
/** What a group read through the broker at `port` says to do: the delete through that broker. */
const remoteWhy = (port: number, name: string) =>
  groupWhyAs(
    name,
    `cxlog groups --brokers 127.0.0.1:${port} delete ${name}, as a user with the admin right on every topic`
  )

// The tests run in order: the last ones delete what the first ones read.
sharedLayer(damagedCluster, { timeout: 60_000 })("a region's objects damaged in place, through the CLI", (it) => {
  it.effect("a corrupt topic descriptor is listed as such and described, on the host and through a broker, to users who may see it", () =>
    Effect.gen(function*() {
      const { cli, port, viewerSecret } = yield* DamagedCluster
      const listed = yield* cli("topics")
      expect(listed.code).toBe(0)
      expect(listed.stdout).toMatch(/^jobs /m)
      expect(listed.stderr).toMatch(new RegExp(`^cxlog topics: ${topicWhy}`, "m"))
      // Described, it is not an unknown name.
      const described = yield* cli("topics", "describe", "lost")
      expect(described.code).toBe(1)
      expect(described.stderr).toMatch(new RegExp(`^cxlog topics: ${topicWhy}`))
      // Through a broker (the region's local user, who may see every topic), said the same way.
      const remote = yield* cli("topics", "--brokers", `127.0.0.1:${port}`)
      expect(remote.code).toBe(0)
      expect(remote.stdout).toMatch(/^jobs /m)
      expect(remote.stderr).toMatch(new RegExp(`^cxlog topics: ${topicWhy}`, "m"))
      const remoteJson = yield* cli("topics", "--brokers", `127.0.0.1:${port}`, "--json")
      expect(JSON.parse(remoteJson.stdout).unreadable).toEqual([expect.stringMatching(new RegExp(`^${topicWhy}`))])
      // A user who may not see the topic is not told of it.
      const viewer = yield* cli("topics", "--brokers", `127.0.0.1:${port}`, "--secret-file", viewerSecret, "--json")
      expect(viewer.code, viewer.stderr).toBe(0)
      expect(viewer.stderr).toBe("")
      expect(JSON.parse(viewer.stdout)).not.toHaveProperty("unreadable")
    }))

  it.effect("corrupt group headers are said beside the sound groups on the region's host, and described as such", () =>
    Effect.gen(function*() {
      const { cli } = yield* DamagedCluster
      const groups = yield* cli("groups")
      expect(groups.code).toBe(0)
      expect(groups.stdout).toMatch(/^sound /m)
      expect(groups.stdout).not.toMatch(/^broken /m)
      expect(groups.stderr).toMatch(new RegExp(`^cxlog groups: ${groupWhy}$`, "m"))
      const groupsJson = yield* cli("groups", "--json")
      expect(groupsJson.code, groupsJson.stderr).toBe(0)
      expect(JSON.parse(groupsJson.stdout)).toEqual({
        groups: [expect.objectContaining({ name: "sound", topic: "jobs" })],
        unreadable: [
          expect.stringMatching(new RegExp(`^${groupWhy}$`)),
          expect.stringMatching(new RegExp(`^${groupWhyAs("worn", "cxlog groups delete worn")}$`))
        ]
      })
      expect(groupsJson.stderr).toMatch(new RegExp(`^cxlog groups: ${groupWhy}$`, "m"))
      const groupDescribed = yield* cli("groups", "describe", "broken")
      expect(groupDescribed.code).toBe(1)
      expect(groupDescribed.stderr).toMatch(new RegExp(`^cxlog groups: ${groupWhy}$`, "m"))
    }))

  // Through the broker (cxlog groups --brokers, as the region's local user, who administers every topic):
  // the list with the damaged groups said beside it, a description, pending messages. What they say to do
  // is the delete through the broker, which works from where it is asked.
  it.effect("through a broker, corrupt group headers are said with the delete that works from there, to users who may delete them", () =>
    Effect.gen(function*() {
      const { cli, port, viewerSecret } = yield* DamagedCluster
      const through = (...args: ReadonlyArray<string>) => cli("groups", "--brokers", `127.0.0.1:${port}`, ...args)
      const remoteGroups = yield* through("--json")
      expect(remoteGroups.code, remoteGroups.stderr).toBe(0)
      // A script reading the JSON learns of them too, as from cxlog topics --json.
      expect(JSON.parse(remoteGroups.stdout)).toEqual({
        groups: [expect.objectContaining({ name: "sound", topic: "jobs" })],
        unreadable: [
          expect.stringMatching(new RegExp(`^${remoteWhy(port, "broken")}$`)),
          expect.stringMatching(new RegExp(`^${remoteWhy(port, "worn")}$`))
        ]
      })
      expect(remoteGroups.stderr).toMatch(
        new RegExp(`^cxlog groups: ${remoteWhy(port, "broken")}\\ncxlog groups: ${remoteWhy(port, "worn")}\\n$`)
      )
      expect((yield* through("describe", "sound")).stdout).toMatch(/^group sound: topic jobs,/)
      expect((yield* through("pending", "sound")).stdout).toBe("group sound: nothing pending\n")
      const remoteDescribed = yield* through("describe", "broken")
      expect(remoteDescribed.code).toBe(1)
      expect(remoteDescribed.stderr).toMatch(new RegExp(`^cxlog groups: ${remoteWhy(port, "broken")}$`, "m"))
      // A user who may not delete them (no admin right on every topic) is not told of them in the list.
      const viewerGroups = yield* through("--secret-file", viewerSecret)
      expect(viewerGroups.stdout, viewerGroups.stderr).toMatch(/^sound /m)
      expect(viewerGroups.stderr).toBe("")
      // Nor by describing one: its rights are checked first, and the refusal is that of a group it may not use.
      const viewerDescribed = yield* through("describe", "broken", "--secret-file", viewerSecret)
      expect(viewerDescribed.code).toBe(1)
      expect(viewerDescribed.stderr).toContain("user viewer may not use consumer group broken")
      expect(viewerDescribed.stderr).not.toContain("cannot be read")
    }))

  it.effect("deleted (a group through the broker), each damaged object's name is free for a new one, and nothing is said of them any more", () =>
    Effect.gen(function*() {
      const { cli, port } = yield* DamagedCluster
      const through = (...args: ReadonlyArray<string>) => cli("groups", "--brokers", `127.0.0.1:${port}`, ...args)
      const remoteDeleted = yield* through("delete", "broken")
      expect(remoteDeleted.code, remoteDeleted.stderr).toBe(0)
      expect(remoteDeleted.stdout).toBe("deleted group broken\n")
      expect((yield* cli("topics", "delete", "lost")).code).toBe(0)
      expect((yield* cli("groups", "delete", "worn")).code).toBe(0)
      expect((yield* cli("topics", "create", "lost")).code).toBe(0)
      const created = yield* through("create", "broken", "--topic", "lost")
      expect(created.stdout, created.stderr).toBe("created group broken on topic lost at offset 0\n")
      const after = yield* cli("topics")
      expect(after.stdout).toMatch(/^lost /m)
      expect(after.stderr).toBe("")
      const listedAfter = yield* cli("groups")
      expect(listedAfter.stdout).toMatch(/^broken +lost /m)
      expect(listedAfter.stderr).toBe("")
      const groupsAfter = yield* cli("groups", "--json")
      const report = JSON.parse(groupsAfter.stdout)
      expect(report.groups).toContainEqual(expect.objectContaining({ name: "broken", topic: "lost" }))
      expect(report).not.toHaveProperty("unreadable")
      expect(groupsAfter.stderr).toBe("")
    }))

  it.effect("a topic whose directory entry is damaged but still says its name is listed by that name and deleted by it", () =>
    Effect.gen(function*() {
      const { cli, region } = yield* DamagedCluster
      expect((yield* cli("topics", "create", "torn")).code).toBe(0)
      const slot = yield* breakTopicEntry(region, "torn")
      const torn = yield* cli("topics")
      expect(torn.stdout).not.toMatch(/^torn /m)
      expect(torn.stderr).toBe(
        `cxlog topics: topic "torn" cannot be read: directory entry ${slot} of its name's hash is corrupt (its fields ` +
          `out of range); deleting the topic frees its entry and memory (what it held cannot be read)\n`
      )
      expect((yield* cli("topics", "delete", "torn")).code).toBe(0)
      expect((yield* cli("topics")).stderr).toBe("")
    }))

  it.effect("a directory entry whose name cannot be read either is said by its slot, with what it holds and what frees it", () =>
    Effect.gen(function*() {
      const { cli, region } = yield* DamagedCluster
      expect((yield* cli("topics", "create", "blank")).code).toBe(0)
      const blank = yield* breakTopicEntry(region, "blank", true)
      const said = yield* cli("topics")
      expect(said.stdout).not.toMatch(/^blank /m)
      expect(said.stderr).toMatch(
        new RegExp(
          `^cxlog topics: directory entry ${blank} cannot be read \\(damaged; its name neither\\): it holds ` +
            `[0-9.]+ MiB of the region's memory, and no topic's name deletes it: a head taking the region over \\(a ` +
            `restart of the head\\) deletes it, and its memory comes back once no process that opened it holds it\\n$`
        )
      )
    }))
})
