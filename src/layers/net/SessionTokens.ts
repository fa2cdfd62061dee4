/**
 * The tokens of this process's sessions (Auth.ts `sessionToken`), from the SESSION_OPENED that
 * registered each: a further connection or a reconnection names it, so any broker of the
 * credential file lets the session's user, and only it, attach the session again. One store per
 * process, shared by every connection of every publisher in it.
 */

const tokens = new Map<string, string>()
/** Far above the sessions one process keeps open; the oldest go first. */
const MAX_SESSION_TOKENS = 65_536

/** Who a token is for: the user, the session's topic, client id and epoch. */
export interface SessionOwner {
  readonly user: string
  readonly topic: string
  readonly clientId: number
  readonly sessionEpoch: number
}

const keyOf = (o: SessionOwner) => `${o.user}/${o.topic}/${o.clientId}/${o.sessionEpoch}`

/** The session's token, if the broker that opened it gave one. */
export const sessionToken = (owner: SessionOwner): string | undefined => tokens.get(keyOf(owner))

/** Keeps a session's token, dropping the oldest past the bound. */
export const keepSessionToken = (owner: SessionOwner, token: string): void => {
  const key = keyOf(owner)
  if (!tokens.has(key) && tokens.size >= MAX_SESSION_TOKENS) tokens.delete(tokens.keys().next().value!)
  tokens.set(key, token)
}

/** Forgets a session's token: the session was closed cleanly. */
export const forgetSessionToken = (owner: SessionOwner): void => {
  tokens.delete(keyOf(owner))
}
