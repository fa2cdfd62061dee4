/**
 * What an authenticated user may do: per-topic rights (`authorize`, the one rights check of
 * every TCP session) and the rate budgets that enforce its per-user limits.
 */
import type { UserRecord } from "./AuthCredentialFile.js"

export type Action = "publish" | "read" | "consume" | "admin"

/** Matches `*` as any run of characters; everything else literally. */
const patternMatches = (pattern: string, topic: string): boolean => {
  if (!pattern.includes("*")) return pattern === topic
  const parts = pattern.split("*")
  if (!topic.startsWith(parts[0]!) || !topic.endsWith(parts[parts.length - 1]!)) return false
  let at = parts[0]!.length
  for (let i = 1; i < parts.length - 1; i++) {
    const found = topic.indexOf(parts[i]!, at)
    if (found < 0) return false
    at = found + parts[i]!.length
  }
  return at <= topic.length - parts[parts.length - 1]!.length
}

/** The patterns of `user`'s `action` right (a record without the consume right may join any consumer; one without the admin right administers nothing). */
const rightsOf = (user: UserRecord, action: Action): ReadonlyArray<string> =>
  action === "publish"
    ? user.publish
    : action === "read"
    ? user.read
    : action === "consume"
    ? user.consume ?? ["*"]
    : user.admin ?? []

/**
 * The one rights check of every TCP session: undefined when `user` may `action` on `target` (a
 * topic; for `consume`, a named consumer's name), else why not.
 */
export const authorize = (user: UserRecord, action: Action, target: string): string | undefined => {
  const rights = rightsOf(user, action)
  if (rights.some((p) => patternMatches(p, target))) return undefined
  const what = action === "publish"
    ? `publish to topic ${target}`
    : action === "read"
    ? `read from topic ${target}`
    : action === "consume"
    ? `join consumer ${target}`
    : `administer topic ${target}`
  return `user ${user.name} may not ${what} (its ${action} rights: ${rights.join(", ") || "none"})`
}

/**
 * A rate over about a second: `take` succeeds while the budget is not in debt (a batch may
 * overdraw it, so any batch size passes at a low rate), and the budget refills at `perSecond`
 * up to one second's worth.
 */
export class RateBudget {
  private tokens: number
  private at = performance.now()
  constructor(readonly perSecond: number) {
    this.tokens = perSecond
  }
  take(amount: number): boolean {
    const now = performance.now()
    this.tokens = Math.min(this.perSecond, this.tokens + ((now - this.at) / 1000) * this.perSecond)
    this.at = now
    if (this.tokens <= 0) return false
    this.tokens -= amount
    return true
  }
}
