/**
 * A change this host makes through the head's coordinator (a topic's, a group's) asks first
 * whether there is a head: one whose process is gone or whose lease lapsed is `HeadUnavailable`
 * within a look or two (about 50 ms), as through a broker, where joining the coordinator of no
 * head would retry for 10 s and then name the coordinator, not the head. Not waited for: a
 * standby takes a lapsed lease over within the lease, and the command is run again then.
 */
import { Effect } from "effect"
import { awaitHead, makeHeadWatch } from "../../layers/log/HeadWatch.js"
import { attachRegion, type RegionAccess } from "../../layers/Roles.js"
import { CxlMemory } from "../../services/region/CxlMemory.js"

export const headPresent = (region: RegionAccess, waitingFor: string) =>
  Effect.flatMap(CxlMemory, (memory) => awaitHead(makeHeadWatch(memory, 0), () => waitingFor)).pipe(
    Effect.provide(attachRegion(region))
  )
