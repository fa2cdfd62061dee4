/**
 * What stops a supervisor's children should the supervisor die without stopping them (SIGKILL,
 * the OOM killer, a third Ctrl-C): each child runs in a process group of its own, with no channel
 * to its supervisor, so it would otherwise run on for good — and a supervisor started again
 * would run a second set beside it.
 *
 * A `sh` in a session of its own (a terminal's Ctrl-C or hang-up does not reach it) is told each
 * child's process group as it starts and ends, on a pipe only the supervisor holds open. When the
 * supervisor dies the pipe reaches its end: the groups still listed get SIGTERM (and SIGCONT, as a
 * shutdown sends), and SIGKILL after the stop timeout. A supervisor that ends as it should kills
 * the watcher first, so it never signals a group whose id was reused since.
 */
import { Effect, type Scope } from "effect"
import { pipeWatcher } from "./PipeWatcher.js"

export interface OrphanGuard {
  /** The group led by `pid` is to be stopped should the supervisor die. */
  readonly add: (pid: number) => void
  /** That group has ended (its leader exited and the rest was SIGKILLed). */
  readonly remove: (pid: number) => void
}

/** Reads `+ PID` and `- PID` lines until its input ends, then stops the groups still listed; $1 is the SIGKILL's delay (s). */
const WATCHER = `
groups=""
while read -r op pid; do
  case "$op" in
    +) groups="$groups $pid" ;;
    -) kept=""; for g in $groups; do [ "$g" = "$pid" ] || kept="$kept $g"; done; groups="$kept" ;;
  esac
done
[ -z "$groups" ] && exit 0
for g in $groups; do kill -TERM -"$g" 2>/dev/null; kill -CONT -"$g" 2>/dev/null; done
sleep "$1"
for g in $groups; do kill -KILL -"$g" 2>/dev/null; done
`

/** A watcher for the scope: its end (the supervisor's shutdown done) takes the watcher down without it signalling anyone. */
export const makeOrphanGuard = (stopTimeoutMs: number): Effect.Effect<OrphanGuard, never, Scope.Scope> =>
  Effect.map(
    // $0 names it in a process listing.
    pipeWatcher(WATCHER, ["cxlog-supervisor-orphan-guard", String(stopTimeoutMs / 1000)], { detached: true }),
    (watcher) => {
      const tell = (line: string) => {
        if (watcher.stdin!.writable) watcher.stdin!.write(line)
      }
      return {
        add: (pid) => tell(`+ ${pid}\n`),
        remove: (pid) => tell(`- ${pid}\n`)
      }
    }
  )
