import type { FastifyPluginAsync, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { invalidInput } from '../errors.js'

type Part = 'query' | 'params'

/**
 * Ajv coerces a query or path value like `1e309` to Infinity and then skips `minimum` and
 * `maximum` for it (they only judge finite numbers), so a number the schema let through was
 * not one the database accepts. Each route whose query or params declare numbers refuses
 * non-finite ones with a 400, after validation; other routes get no hook at all.
 */
const finiteNumbersPlugin: FastifyPluginAsync = async function finiteNumbersPlugin (fastify) {
  fastify.addHook('onRoute', function guardNumbers (route: RouteOptions) {
    const numeric: Array<[Part, string]> = [
      ...numericProperties(route.schema?.querystring).map((key): [Part, string] => ['query', key]),
      ...numericProperties(route.schema?.params).map((key): [Part, string] => ['params', key]),
    ]
    if (numeric.length === 0) return
    const existing = route.preHandler === undefined ? [] : [route.preHandler].flat()
    route.preHandler = [async function refuseNonFiniteNumbers (request: FastifyRequest) {
      for (const [part, key] of numeric) {
        const value = (request[part] as Record<string, unknown> | undefined)?.[key]
        if (typeof value === 'number' && !Number.isFinite(value)) throw invalidInput({ [key]: 'must be a finite number' })
      }
    }, ...existing]
  })
}

function numericProperties (schema: unknown): string[] {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> } | undefined)?.properties ?? {}
  return Object.entries(properties).filter(([, property]) => property.type === 'integer' || property.type === 'number').map(([key]) => key)
}

export default fp(finiteNumbersPlugin, { fastify: '5.x', name: 'quiesce-finite-numbers' })
