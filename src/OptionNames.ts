/**
 * The names an options object or spec may have, checked where a JavaScript caller hands one in:
 * a misspelt option (`maxInflightBatches`, `ackWait`) is the caller's mistake to be told, not a
 * setting left out in silence. The names are a record over the type's keys, so the compiler
 * keeps the list complete as options are added.
 */

/** Every name of `T`'s fields. */
export type NamesOf<T> = { readonly [K in keyof Required<T>]: true }

type Names = Readonly<Record<string, true>>

/** The names of `given`'s own fields that are not among `names`, in the order given. */
export const unknownNames = (given: object, names: Names): Array<string> =>
  Object.keys(given).filter((name) => !Object.hasOwn(names, name))

/** `names` as a list for a message: `a, b, c`. */
export const nameList = (names: Names): string => Object.keys(names).join(", ")

/**
 * Why `given` is refused — it is no options object, or `owner` has none of the options it names
 * beyond `names` (listed) — or undefined.
 */
export const unknownOptionsReason = (given: unknown, names: Names, owner: string): string | undefined => {
  if (typeof given !== "object" || given === null || Array.isArray(given)) {
    return `${owner} takes an options object ({ ${Object.keys(names).slice(0, 2).join(", ")}, … }), not ${
      String(given)
    }`
  }
  const unknown = unknownNames(given, names)
  return unknown.length === 0
    ? undefined
    : `${owner} has no option ${unknown.join(", ")} (its options: ${nameList(names)})`
}

/** Why an options object's `signal` is no AbortSignal (a JavaScript caller's `{}`), or undefined: looked at before it is used. */
export const signalProblem = (given: object): string | undefined => {
  const signal = (given as { readonly signal?: unknown }).signal
  return signal === undefined || signal instanceof AbortSignal
    ? undefined
    : `signal must be an AbortSignal (an AbortController's signal), not ${String(signal)}`
}
