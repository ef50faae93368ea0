import { Readable } from 'node:stream'
import type { FastifyPluginAsync } from 'fastify'
import { MAX_INTEGER } from '../db/schema.js'
import type { Channel, LogEntry, LogFilter } from '../maintenance/index.js'
import { invalidInput, type FieldErrors } from '../errors.js'

interface LogPage {
  entries: LogEntry[]
  /** How many entries the filters let through. */
  total: number
  filters: LogFilters
  errors: FieldErrors
  actors: string[]
  /** The query string of the filters alone (for the paging and CSV links). */
  query: string
  older: number | null
  newer: number | null
  /** Whether this page is not the newest one. */
  paged: boolean
}

declare module '../web/view.js' {
  interface Pages {
    'manage-log': LogPage
  }
}

/** The filter form as it was submitted: text, so it can be shown again as typed. */
interface LogFilters { actor: string, outcome: string, channel: string, from: string, to: string }

interface LogQuery extends Partial<LogFilters> { before?: string, after?: string }

const PAGE_SIZE = 50
const OUTCOMES = ['applied', 'refused'] as const
const CHANNELS: readonly Channel[] = ['web', 'api', 'cli', 'scheduler']
const DAY = /^\d{4}-\d{2}-\d{2}$/

function dayStart (day: string): string | undefined {
  if (!DAY.test(day)) return undefined
  const at = new Date(`${day}T00:00:00.000Z`)
  return Number.isNaN(at.getTime()) || at.toISOString().slice(0, 10) !== day ? undefined : at.toISOString()
}

/** The filters of the form (days are UTC; "to" includes its whole day), or what is wrong with them. */
function logFilterFrom (query: LogQuery): { filters: LogFilters, filter: LogFilter, errors: FieldErrors } {
  const filters: LogFilters = {
    actor: (query.actor ?? '').trim(),
    outcome: query.outcome ?? '',
    channel: query.channel ?? '',
    from: (query.from ?? '').trim(),
    to: (query.to ?? '').trim(),
  }
  const filter: LogFilter = {}
  const errors: FieldErrors = {}
  if (filters.actor !== '') {
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(filters.actor) || filters.actor.length > 100) errors.actor = 'must be a name'
    else filter.actor = filters.actor
  }
  if (filters.outcome !== '') {
    if ((OUTCOMES as readonly string[]).includes(filters.outcome)) filter.outcome = filters.outcome as LogFilter['outcome']
    else errors.outcome = 'must be applied or refused'
  }
  if (filters.channel !== '') {
    if ((CHANNELS as readonly string[]).includes(filters.channel)) filter.channel = filters.channel as Channel
    else errors.channel = 'must be web, api, cli or scheduler'
  }
  if (filters.from !== '') {
    const from = dayStart(filters.from)
    if (from === undefined) errors.from = 'must be a day like 2026-12-02'
    else filter.from = from
  }
  if (filters.to !== '') {
    const to = dayStart(filters.to)
    if (to === undefined) errors.to = 'must be a day like 2026-12-02'
    else filter.to = new Date(Date.parse(to) + 24 * 60 * 60 * 1000).toISOString()
  }
  if (filter.from !== undefined && filter.to !== undefined && filter.from >= filter.to) errors.to = 'must not be before the first day'
  return { filters, filter, errors }
}

function queryOf (filters: LogFilters): string {
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(filters)) if (value !== '') params.set(key, value)
  return params.toString()
}

function positive (value: string | undefined): number | undefined {
  const number = Number.parseInt(value ?? '', 10)
  return Number.isInteger(number) && number > 0 && number <= MAX_INTEGER ? number : undefined
}

const CSV_COLUMNS = ['id', 'at', 'actor', 'channel', 'instance', 'from_mode', 'to_mode', 'reason', 'until', 'expected_version', 'new_version', 'outcome', 'detail'] as const

/**
 * One CSV cell (RFC 4180: always quoted, quotes doubled). A text that a spreadsheet would take
 * for a formula (it starts with = + - @, a tab or a carriage return) gets a leading apostrophe,
 * so opening the export never runs what someone typed as a reason (CSV injection).
 */
export function csvCell (value: string | number | null): string {
  if (value === null) return ''
  let text = String(value)
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`
  return `"${text.replaceAll('"', '""')}"`
}

function csvRow (entry: LogEntry): string {
  return [
    entry.id, entry.at, entry.actor, entry.channel, entry.instance, entry.fromMode, entry.toMode, entry.reason,
    entry.until, entry.expectedVersion, entry.newVersion, entry.outcome, entry.detail,
  ].map(csvCell).join(',') + '\r\n'
}

/** The audit log for managers: filtered by who, outcome, channel and days, in pages, and as CSV. */
const logRoutes: FastifyPluginAsync = async function logRoutes (fastify) {
  const maintenance = fastify.maintenance

  fastify.get<{ Querystring: LogQuery }>('/manage/log', async function auditLog (request, reply) {
    const { filters, filter, errors } = logFilterFrom(request.query)
    const actors = await maintenance.logActors()
    const page: LogPage & { title: string } = { title: 'Maintenance log', entries: [], total: 0, filters, errors, actors, query: queryOf(filters), older: null, newer: null, paged: false }
    if (Object.keys(errors).length > 0) {
      reply.code(400)
      return reply.render('manage-log', page)
    }
    const before = positive(request.query.before)
    const after = before === undefined ? positive(request.query.after) : undefined
    const [found, total] = await Promise.all([
      maintenance.log(PAGE_SIZE + 1, before, after === undefined ? filter : { ...filter, afterId: after }),
      maintenance.countLog(filter),
    ])
    // One more than a page tells whether there is more in the direction we went.
    const more = found.length > PAGE_SIZE
    const entries = after === undefined ? found.slice(0, PAGE_SIZE) : found.slice(found.length - Math.min(found.length, PAGE_SIZE))
    const paged = before !== undefined || (after !== undefined && more)
    return reply.render('manage-log', {
      ...page,
      entries,
      total,
      older: entries.length > 0 && (after !== undefined || more) ? entries.at(-1)!.id : null,
      newer: paged && entries.length > 0 ? entries[0]!.id : null,
      paged,
    })
  })

  // Streamed page by page, so a long log never sits in memory; no unit of work (it only reads).
  fastify.get<{ Querystring: LogQuery }>('/manage/log.csv', { config: { unitOfWork: false } }, async function auditLogCsv (request, reply) {
    const { filter, errors } = logFilterFrom(request.query)
    if (Object.keys(errors).length > 0) throw invalidInput(errors)
    async function * lines () {
      yield CSV_COLUMNS.join(',') + '\r\n'
      let before: number | undefined
      for (;;) {
        const entries = await maintenance.log(500, before, filter)
        for (const entry of entries) yield csvRow(entry)
        if (entries.length < 500) return
        before = entries.at(-1)!.id
      }
    }
    const stamp = new Date().toISOString().slice(0, 16).replace(/[-:]/g, '').replace('T', '-')
    reply.type('text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="quiesce-maintenance-log-${stamp}.csv"`)
      .header('cache-control', 'no-store')
    return reply.send(Readable.from(lines()))
  })
}

export default logRoutes
