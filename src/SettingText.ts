/**
 * The rules of a setting's text that need no Effect: Settings.ts builds its parsers on them, and
 * the launcher (programs/cli/LauncherSettings.ts) reads its own settings by them before the
 * bundle, and Effect with it, is loaded. One rule each, so both refuse and accept the same text.
 */

/**
 * Why a variable set to "" is refused: it is a mistake (a shell variable that expanded to
 * nothing, a value left out), never a way to ask for the default, which unsetting it gives.
 */
export const SET_BUT_EMPTY = "set but empty"

/** A value read from a setting's text, or why the text names none. */
export type Read<A> = { readonly value: A } | { readonly problem: string }

/** A whole number from `min` to `max`. */
export const readWholeNumber = (text: string, min: number, max = Number.POSITIVE_INFINITY): Read<number> => {
  if (!/^-?\d+$/.test(text.trim())) return { problem: `${text} is not a whole number` }
  const n = Number(text)
  if (n < min) return { problem: `${text} is below ${min}` }
  // Past 2^53 a number is no longer read exactly (99999999999999999999 reads as 1e20).
  if (!Number.isSafeInteger(n)) return { problem: `${text} is above ${Math.min(max, Number.MAX_SAFE_INTEGER)}` }
  return n > max ? { problem: `${text} is above ${max}` } : { value: n }
}

/**
 * The longest wait a Node timer takes, in milliseconds (about 24.8 days): a longer one fires
 * after 1 ms, with a warning, so a timeout past it would end at once rather than later.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** The highest TCP port: a port setting's bound. */
export const MAX_PORT = 65_535

/** One of `values`. */
export const readChoice = <const C extends string>(text: string, values: ReadonlyArray<C>): Read<C> =>
  (values as ReadonlyArray<string>).includes(text)
    ? { value: text as C }
    : { problem: `${text} is not one of ${values.join(", ")}` }
