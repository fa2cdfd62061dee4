/**
 * Durations in public options. Each option that is a span of time takes a `DurationInput`
 * (`"5 seconds"`, `Duration.seconds(5)`, or a number of milliseconds) under its plain name —
 * `linger`, `connectTimeout` — and keeps its number form in milliseconds, `lingerMs`, for the
 * code written against it. When both are given the duration wins. The engines read the number
 * form: `withMillis` fills it in where the options enter.
 */
import { Duration, Option } from "effect"

/** The duration names of `O`: each `x` whose `xMs` is a number field too. */
type DurationNames<O> = {
  [K in keyof O]: K extends `${infer Name}Ms` ? Name extends keyof O ? Name : never : never
}[keyof O]

/** `options` with every duration given under its plain name written into its `…Ms` field as milliseconds. */
export const withMillis = <O extends object>(options: O, names: ReadonlyArray<DurationNames<O>>): O => {
  let resolved = options
  for (const name of names) {
    const given = options[name] as Duration.DurationInput | undefined
    if (given !== undefined) {
      resolved = { ...resolved, [`${String(name)}Ms`]: Duration.toMillis(Duration.decode(given)) }
    }
  }
  return resolved
}

/**
 * Why `given`, the option `name`, is no duration (`"5 sekonds"`, an object), or undefined: a
 * JavaScript caller can pass anything, and `withMillis` throws on what does not decode.
 */
export const durationProblem = (name: string, given: unknown): string | undefined =>
  given === undefined || Option.isSome(Duration.decodeUnknown(given))
    ? undefined
    : `${name} must be a duration ("5 seconds", Duration.seconds(5)) or a number of milliseconds, not ${
      typeof given === "string" ? JSON.stringify(given) : String(given)
    }`

/** The first of `names` given in `options` that is no duration, as `durationProblem` says it. */
export const durationsProblem = <O extends object>(
  options: O,
  names: ReadonlyArray<DurationNames<O>>
): string | undefined => {
  for (const name of names) {
    const problem = durationProblem(String(name), options[name])
    if (problem !== undefined) return problem
  }
  return undefined
}
