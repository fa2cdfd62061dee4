/**
 * The names an options object or spec may have, checked where a JavaScript caller hands one in:
 * a misspelt option (`maxInflightBatches`, `ackWait`) is the caller's mistake to be told, not a
 * setting left out in silence. The names are a record over the type's keys, so the compiler
 * keeps the list complete as options are added.
 */

/** Every name of `T`'s fields. */
export type NamesOf<T> = { readonly [K in keyof Required<T>]: true }

/** The names of `given`'s own fields that are not among `names`, in the order given. */
export const unknownNames = (given: object, names: Readonly<Record<string, true>>): Array<string> =>
  Object.keys(given).filter((name) => !Object.hasOwn(names, name))

/** `names` as a list for a message: `a, b, c`. */
export const nameList = (names: Readonly<Record<string, true>>): string => Object.keys(names).join(", ")
