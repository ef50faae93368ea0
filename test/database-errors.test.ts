import { describe, expect, it } from 'vitest'
import { classifyDatabaseError, isDatabaseUnavailable, isLostConnection } from '../app/db/errors.js'
import { databaseUnavailable } from '../app/errors.js'

const withCode = (code: string, message = 'x') => Object.assign(new Error(message), { code })

describe('what a database error means', () => {
  it('takes a database that cannot serve us now for unavailable, on both databases', () => {
    for (const err of [
      withCode('ECONNREFUSED'), withCode('ECONNRESET'), withCode('ETIMEDOUT'),
      withCode('57P01'), withCode('57P02'), withCode('57P03'), withCode('57014'), withCode('25P03'), withCode('08006'), withCode('53300'), withCode('53100'),
      new Error('Connection terminated unexpectedly'), new Error('Connection terminated due to connection timeout'),
      new Error('timeout exceeded when trying to connect'), new Error('Query read timeout'),
      new Error('Client has encountered a connection error and is not queryable'),
      withCode('SQLITE_FULL'), withCode('SQLITE_IOERR_WRITE'), withCode('SQLITE_CANTOPEN'),
    ]) expect(classifyDatabaseError(err), err.message + (err as { code?: string }).code).toBe('unavailable')
  })

  it('leaves programming errors, conflicts and bad input alone', () => {
    expect(classifyDatabaseError(new Error('relation "x" does not exist'))).toBeUndefined()
    expect(classifyDatabaseError(withCode('42P01'))).toBeUndefined()
    expect(classifyDatabaseError(withCode('08P01'))).toBeUndefined()
    expect(classifyDatabaseError(withCode('22P02'))).toBeUndefined()
    expect(classifyDatabaseError(withCode('SQLITE_ERROR'))).toBeUndefined()
    expect(classifyDatabaseError(withCode('SQLITE_MISMATCH'))).toBeUndefined()
    expect(classifyDatabaseError(withCode('40001'))).toBe('serialization')
    expect(classifyDatabaseError(withCode('SQLITE_BUSY'))).toBe('busy')
    expect(classifyDatabaseError(withCode('SQLITE_READONLY'))).toBe('read-only')
  })

  it('looks through causes', () => {
    expect(isDatabaseUnavailable(new Error('wrapped', { cause: withCode('ECONNREFUSED') }))).toBe(true)
    expect(isDatabaseUnavailable(new Error('wrapped', { cause: new Error('no') }))).toBe(false)
  })

  it('says that a commit whose connection was lost on the way may have been saved, and that one refused was not', () => {
    const lost = new Error('Connection terminated unexpectedly')
    expect(isLostConnection(lost)).toBe(true)
    expect(isLostConnection(withCode('ECONNREFUSED'))).toBe(false)
    expect(isLostConnection(new Error('timeout exceeded when trying to connect'))).toBe(false)
    expect(isLostConnection(withCode('SQLITE_FULL'))).toBe(false)
    expect(databaseUnavailable(lost, { committing: true }).message).toMatch(/may or may not have been saved/)
    expect(databaseUnavailable(lost).message).toMatch(/nothing was saved/)
    expect(databaseUnavailable(withCode('SQLITE_FULL'), { committing: true }).message).toMatch(/nothing was saved/)
    expect(databaseUnavailable(lost)).toMatchObject({ code: 'QUIESCE_STATE_UNAVAILABLE', statusCode: 503 })
  })
})
