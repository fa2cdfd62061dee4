/**
 * An HTTP server that lives as long as its scope: what a role's metrics endpoint
 * (MetricsServer.ts) and the dashboard (report/Dashboard.ts) both serve on. It listens before
 * the effect returns (a port taken is the caller's typed error, not a crash later), and the
 * scope's end closes it with its open connections, so nothing keeps the process up.
 */
import { Effect, type Scope } from "effect"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"

/**
 * Serves `handle` on `host`:`port` until the scope closes: the port it listens on (the system's
 * pick for 0), or `failed` with why it could not listen (its message, and its code: EADDRINUSE, …).
 */
export const serveHttp = <E>(
  host: string,
  port: number,
  handle: (request: IncomingMessage, response: ServerResponse) => void,
  failed: (reason: string, code: string | undefined) => E
): Effect.Effect<number, E, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.async<Server, E>((resume) => {
        const server = createServer(handle)
        server.once("error", (error: NodeJS.ErrnoException) => resume(Effect.fail(failed(error.message, error.code))))
        server.listen(port, host, () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    ),
    (server) => {
      const address = server.address()
      return typeof address === "object" && address !== null ? address.port : port
    }
  )
