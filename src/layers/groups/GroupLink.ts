/**
 * The client's side of a consumer groups' connection (GroupProtocol.ts): a request link
 * (net/RequestLink.ts) opened with GROUP and accepted by GROUP_READY, as an admin link is
 * (AdminClient.ts), whose calls answer GROUP_REPLY or GROUP_FAILURE. It also carries its members'
 * frames: GROUP_DELIVERY and GROUP_LEFT go to the member they name. A link that breaks fails its
 * calls in flight with `GroupsUnavailable` and tells each member; no later call goes over it.
 */
import { Effect } from "effect"
import type { RpcMethod } from "../../services/control/Rpc.js"
import { GroupsUnavailable } from "../../services/groups/ConsumerGroups.js"
import type { BrokerAddress } from "../net/BrokerAddress.js"
import type { ConnectionClosed } from "../net/ClientConnection.js"
import { type Frame, FrameType } from "../net/Frame.js"
import { openRequestLink, type RequestLink, type RequestLinkSettings } from "../net/RequestLink.js"
import { GROUP_FRAMES, groupRequestFrame, plainSettleAnswer } from "./GroupProtocol.js"

/** What a member the link carries is told: its frames, and the link breaking. */
export interface LinkMember {
  readonly frame: (frame: Frame) => void
  readonly broken: (why: GroupsUnavailable) => void
}

export interface GroupLink extends Omit<RequestLink<GroupsUnavailable>, "send"> {
  /**
   * Sends a request no answer comes to (a join): its id, whose member frames go to `member`
   * until `forget`; undefined when the link is broken.
   */
  readonly send: <P, PI, S, SI, F, FI>(
    method: RpcMethod<string, P, PI, S, SI, F, FI>,
    input: P,
    member: LinkMember
  ) => number | undefined
  readonly forget: (id: number) => void
}

/** Opens a groups' link to `address` (GROUP, the CHALLENGE answered, GROUP_READY and the broker's proof), within the connect timeout. */
export const openGroupLink = (
  address: BrokerAddress,
  settings: RequestLinkSettings
): Effect.Effect<GroupLink, ConnectionClosed> =>
  Effect.suspend(() => {
    const members = new Map<number, LinkMember>()
    return Effect.map(
      openRequestLink(address, settings, {
        frames: GROUP_FRAMES,
        requestFrame: groupRequestFrame,
        answerName: "a groups' answer",
        unavailable: (reason) => new GroupsUnavailable({ reason }),
        unanswered: (failed) => failed.message,
        plainAnswer: plainSettleAnswer,
        others: [FrameType.GROUP_DELIVERY, FrameType.GROUP_LEFT],
        other: (frame) => {
          members.get(frame.clientId)?.frame(frame)
          if (frame.type === FrameType.GROUP_LEFT) members.delete(frame.clientId)
        },
        broken: (failed) => {
          const why = new GroupsUnavailable({ reason: failed.message })
          for (const member of members.values()) member.broken(why)
          members.clear()
        }
      }),
      (link): GroupLink => ({
        ...link,
        send: (method, input, member) => {
          const id = link.send(method, input)
          if (id !== undefined) members.set(id, member)
          return id
        },
        forget: (id) => void members.delete(id)
      })
    )
  })
