/**
 * The client's side of an admin connection (AdminProtocol.ts): a request link (RequestLink.ts)
 * opened with ADMIN and accepted by ADMIN_READY, whose calls answer ADMIN_REPLY or ADMIN_FAILURE.
 * A link that breaks fails its calls in flight with `TopicsUnavailable` (whether a change was made
 * is then unknown), and no later call goes over it.
 */
import { TopicsUnavailable } from "../../services/log/Topics.js"
import { ADMIN_FRAMES, adminRequestFrame } from "./AdminProtocol.js"
import type { BrokerAddress } from "./BrokerAddress.js"
import { openRequestLink, type RequestLink, type RequestLinkKind, type RequestLinkSettings } from "./RequestLink.js"

export type AdminLink = RequestLink<TopicsUnavailable>

const adminKind: RequestLinkKind<TopicsUnavailable> = {
  frames: ADMIN_FRAMES,
  requestFrame: adminRequestFrame,
  answerName: "an admin answer",
  unavailable: (reason) => new TopicsUnavailable({ reason }),
  unanswered: (failed, tag) => `${failed.message} (${tag} was asked: whether it was done is unknown)`
}

/** Opens an admin link to `address` (ADMIN, the CHALLENGE answered, ADMIN_READY and the broker's proof), within the connect timeout. */
export const openAdminLink = (address: BrokerAddress, settings: RequestLinkSettings) =>
  openRequestLink(address, settings, adminKind)
