import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'

const kTracked = Symbol('quiesce.maintenance.tracked')
interface TrackedRequest { [kTracked]?: 'request' | 'write' }
const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** This instance's requests and writes in flight, which its heartbeat reports. */
export class RequestTracker {
  requestsInFlight = 0
  writesInFlight = 0

  /** Counts a request from its start (the gate calls it); an unsafe method counts as a write too. */
  track (request: FastifyRequest): void {
    const unsafe = UNSAFE_METHODS.has(request.method)
    ;(request as TrackedRequest)[kTracked] = unsafe ? 'write' : 'request'
    this.requestsInFlight++
    if (unsafe) this.writesInFlight++
  }

  /** Stops counting a request: at its end, or earlier for a long-lived one (an event stream). */
  untrack (request: FastifyRequest): void {
    const tracked = (request as TrackedRequest)[kTracked]
    if (tracked === undefined) return
    ;(request as TrackedRequest)[kTracked] = undefined
    this.requestsInFlight--
    if (tracked === 'write') this.writesInFlight--
  }

  /** Counts work outside HTTP requests (a task's batch) as a write in flight until `done()`. */
  trackWrite (): () => void {
    this.writesInFlight++
    let done = false
    return () => {
      if (!done) this.writesInFlight--
      done = true
    }
  }

  /** The counts now, leaving out `asking` (the request that asks for them) if given. */
  countsWithout (asking: FastifyRequest | undefined): { requestsInFlight: number, writesInFlight: number } {
    const self = asking === undefined ? undefined : (asking as TrackedRequest)[kTracked]
    return {
      requestsInFlight: this.requestsInFlight - (self === undefined ? 0 : 1),
      writesInFlight: this.writesInFlight - (self === 'write' ? 1 : 0),
    }
  }
}

/** A request stops counting when its response is sent or its client goes away. Callback hooks: no promise per request. */
export function untrackFinishedRequests (fastify: FastifyInstance, tracker: RequestTracker): void {
  fastify.addHook('onResponse', function untrackRequest (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
    tracker.untrack(request)
    done()
  })
  fastify.addHook('onRequestAbort', function untrackAbortedRequest (request: FastifyRequest, done: HookHandlerDoneFunction) {
    tracker.untrack(request)
    done()
  })
}
