import { readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { ERRORS } from '../app/errors.js'
import { MAINTENANCE_ERRORS } from '../app/maintenance/errors.js'

const README = readFileSync(path.join(import.meta.dirname, '..', 'README.md'), 'utf8')

type AnyErrorConstructor = new (...args: unknown[]) => Error & { code: string, statusCode: number }

/** One instance of each registered error; the message arguments do not matter here. */
const instances = Object.entries(ERRORS).map(([key, Constructor]) => {
  const error = new (Constructor as unknown as AnyErrorConstructor)('x', 'y')
  return { key, code: error.code, statusCode: error.statusCode, error }
})

/** `| \`QUIESCE_X\` | 503 | …` rows of the README's "Error codes" table. */
function readmeRows (): Map<string, number> {
  const section = README.slice(README.indexOf('## Error codes'))
  const end = section.indexOf('\n## ', 1)
  const table = end === -1 ? section : section.slice(0, end)
  const rows = new Map<string, number>()
  for (const match of table.matchAll(/^\| `(QUIESCE_[A-Z_]+)` \| (\d{3}) \|/gm)) rows.set(match[1]!, Number(match[2]))
  return rows
}

describe('the error registry', () => {
  it('has entries whose key is their code', () => {
    expect(instances.length).toBeGreaterThan(0)
    for (const { key, code } of instances) expect(code, key).toBe(key)
  })

  it('has unique QUIESCE_ codes with HTTP error statuses', () => {
    const codes = instances.map(({ code }) => code)
    expect(new Set(codes).size).toBe(codes.length)
    for (const { code, statusCode } of instances) {
      expect(code).toMatch(/^QUIESCE_[A-Z]+(_[A-Z]+)*$/)
      expect(statusCode, code).toBeGreaterThanOrEqual(400)
      expect(statusCode, code).toBeLessThan(600)
    }
  })

  it('includes every error of the self-contained maintenance plugin', () => {
    for (const [code, Constructor] of Object.entries(MAINTENANCE_ERRORS)) {
      expect((ERRORS as Record<string, unknown>)[code], code).toBe(Constructor)
    }
  })

  it('is listed in the README, each code with its status, in the "Error codes" table', () => {
    expect(README).toContain('## Error codes')
    const rows = readmeRows()
    for (const { code, statusCode } of instances) {
      expect(rows.get(code), `${code} in the README's table`).toBe(statusCode)
    }
  })

  it('lists nothing in the README that the registry does not have', () => {
    const registered = new Set(instances.map(({ code }) => code))
    for (const code of readmeRows().keys()) expect(registered.has(code), `${code} is in the README but not in ERRORS`).toBe(true)
  })
})
