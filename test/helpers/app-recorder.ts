import type * as FastifyModule from 'fastify'

/** A route as the app registered it: one method and the URL pattern. */
export interface RecordedRoute {
  method: string
  url: string
}

/** Every route of every Fastify instance built since the test file started, in registration order. */
export const recordedRoutes: RecordedRoute[] = []

/** The errors the apps' handlers and hooks threw, newest last, as `METHOD URL: message` (for reports). */
export const recordedErrors: string[] = []

/**
 * The `fastify` module with its factory wrapped so that each instance records its routes with an
 * `onRoute` hook, added before any plugin: so a test learns the routes from the app itself and
 * a route added later cannot go unnoticed. It records the errors requests end in too (an
 * `onError` hook), so that a report can say why a request failed. Use it from a test file:
 *
 * ```ts
 * vi.mock('fastify', async (importOriginal) => (await import('./helpers/app-recorder.js')).recordingFastify(await importOriginal()))
 * ```
 */
export function recordingFastify (fastify: typeof FastifyModule): typeof FastifyModule {
  const factory = fastify.default as unknown as (...args: unknown[]) => FastifyModule.FastifyInstance
  function fastifyRecordingRoutes (...args: unknown[]) {
    const app = factory(...args)
    app.addHook('onRoute', function recordRoute (route) {
      for (const method of [route.method].flat()) recordedRoutes.push({ method, url: route.url ?? route.path })
    })
    app.addHook('onError', async function recordError (request, _reply, error) {
      recordedErrors.push(`${request.method} ${request.url.slice(0, 200)}: ${error.message.slice(0, 300)}`)
      if (recordedErrors.length > 1000) recordedErrors.splice(0, 500)
    })
    return app
  }
  return { ...fastify, default: Object.assign(fastifyRecordingRoutes, fastify.default), fastify: fastifyRecordingRoutes } as unknown as typeof FastifyModule
}

/** `METHOD /url` of each distinct recorded route. */
export function recordedRouteKeys (): string[] {
  return [...new Set(recordedRoutes.map((route) => `${route.method} ${route.url}`))]
}
