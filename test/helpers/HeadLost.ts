/**
 * For tests of what a process sees when its head is gone: `CXLOG_HEAD_LOST_MS` as the process's
 * members read it, and how an effect fails and after how long.
 */
import { ConfigProvider, Effect } from "effect"

/** `CXLOG_HEAD_LOST_MS` as this process's members read it as they are built (the rest of the environment as it is). */
export const headLostMs = (ms: number) =>
  Effect.withConfigProvider(
    ConfigProvider.fromMap(new Map([["CXLOG_HEAD_LOST_MS", `${ms}`]])).pipe(
      ConfigProvider.orElse(() => ConfigProvider.fromEnv())
    )
  )

/** How `effect` fails, and after how long; one that has not failed within 30 s fails the test. */
export const failureOf = <E extends { readonly message: string }>(effect: Effect.Effect<unknown, E>) =>
  Effect.gen(function*() {
    const startedAt = Date.now()
    const failed = yield* Effect.flip(effect).pipe(Effect.timeout("30 seconds"))
    return { failed, tookMs: Date.now() - startedAt }
  })
