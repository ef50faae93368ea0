import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { csvCell } from '../app/manage/log.js'
import { mainOf, startTestSite, type Browser, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { addPrincipals, basicOf, signedInBrowser } from './helpers/principals.js'

const BOSS = basicOf('maintainer')

describe('csvCell', () => {
  it.each([
    ['plain', '"plain"'],
    ['say "hi", then go', '"say ""hi"", then go"'],
    ['two\nlines', '"two\nlines"'],
    ['=HYPERLINK("http://evil.example")', '"\'=HYPERLINK(""http://evil.example"")"'],
    ['+1', '"\'+1"'],
    ['-2+3', '"\'-2+3"'],
    ['@SUM(A1)', '"\'@SUM(A1)"'],
    ['\t=1', '"\'\t=1"'],
    ['\r=1', '"\'\r=1"'],
    [' =1', '" =1"'],
  ])('%j becomes %s', (value, expected) => {
    expect(csvCell(value)).toBe(expected)
  })

  it('numbers are quoted as they are; null is an empty cell', () => {
    expect(csvCell(42)).toBe('"42"')
    expect(csvCell(null)).toBe('')
  })
})

describe.each(DATABASE_KINDS)('the maintenance log page on %s', (kind) => {
  let site: TestSite
  let boss: Browser

  beforeAll(async () => {
    site = await startTestSite(kind)
    await addPrincipals(site, ['maintainer', 'member'])
    boss = await signedInBrowser(site.app, 'maintainer')
  })
  afterAll(async () => { await site.close() })

  function get (url: string, headers: Record<string, string> = { cookie: boss.cookie }) {
    return site.app.inject({ url, headers })
  }

  /** Log rows written straight into the table: `count` of them, from `at` on, one second apart. */
  async function addEntries (count: number, entry: { actor: string, channel: 'web' | 'api' | 'cli' | 'scheduler', outcome: 'applied' | 'refused', at: string, reason?: string | null, detail?: string | null }) {
    const start = Date.parse(entry.at)
    const rows = Array.from({ length: count }, (_, index) => ({
      at: new Date(start + index * 1000).toISOString(),
      actor: entry.actor,
      channel: entry.channel,
      instance: 'elsewhere',
      from_mode: 'normal' as const,
      to_mode: 'concurrent',
      reason: entry.reason ?? null,
      until: null,
      expected_version: 1,
      new_version: entry.outcome === 'applied' ? 2 : null,
      outcome: entry.outcome,
      detail: entry.detail ?? null,
    }))
    for (let i = 0; i < rows.length; i += 200) await site.database.writer.insertInto('maintenance_log').values(rows.slice(i, i + 200)).execute()
  }

  function whoColumn (html: string): string[] {
    return [...mainOf(html).matchAll(/<td data-label="Who">([^<]*)<\/td>/g)].map((match) => match[1]!)
  }

  function countLine (html: string): string | undefined {
    return /<p class="meta" role="status" data-testid="log-count">([^<]*)<\/p>/.exec(html)?.[1]
  }

  it('an empty log says nothing yet, on the log page and on the control panel', async () => {
    const page = mainOf((await get('/manage/log')).body)
    expect(page).toContain('<p class="empty" data-testid="log-empty">Nothing yet: no change of the maintenance state has been attempted.</p>')
    expect(page).not.toContain('<table')
    expect(countLine(page)).toBe('No entries in all.')
    const panel = mainOf((await get('/manage')).body)
    expect(panel).toContain('<p class="empty" data-testid="log-empty">Nothing yet: no change of the maintenance state has been attempted.</p>')
  })

  it('filters by who, outcome, channel and days (UTC, both ends included), on the page and in the JSON API', async () => {
    await addEntries(3, { actor: 'boss', channel: 'web', outcome: 'applied', at: '2026-03-01T10:00:00.000Z' })
    await addEntries(2, { actor: 'deputy', channel: 'api', outcome: 'refused', at: '2026-03-02T23:59:58.000Z' })
    await addEntries(4, { actor: 'scheduler', channel: 'scheduler', outcome: 'applied', at: '2026-03-04T00:00:00.000Z' })
    await addEntries(1, { actor: 'boss', channel: 'cli', outcome: 'refused', at: '2026-03-05T08:00:00.000Z' })

    const all = await get('/manage/log')
    expect(countLine(all.body)).toBe('10 entries in all.')
    expect(whoColumn(all.body)).toEqual(['boss', 'scheduler', 'scheduler', 'scheduler', 'scheduler', 'deputy', 'deputy', 'boss', 'boss', 'boss'])
    // The "who" field suggests everyone in the log.
    expect(mainOf(all.body)).toContain('<option value="boss"></option>\n        <option value="deputy"></option>\n        <option value="scheduler"></option>')

    const byBoss = await get('/manage/log?actor=boss')
    expect(whoColumn(byBoss.body)).toEqual(['boss', 'boss', 'boss', 'boss'])
    expect(countLine(byBoss.body)).toBe('4 entries match these filters.')
    expect(mainOf(byBoss.body)).toContain('value="boss" placeholder="anyone"')
    expect(whoColumn((await get('/manage/log?actor=boss&outcome=refused')).body)).toEqual(['boss'])
    expect(whoColumn((await get('/manage/log?channel=api')).body)).toEqual(['deputy', 'deputy'])
    expect(whoColumn((await get('/manage/log?outcome=applied&channel=scheduler')).body)).toHaveLength(4)
    expect(whoColumn((await get('/manage/log?from=2026-03-02&to=2026-03-02')).body)).toEqual(['deputy', 'deputy'])
    expect(whoColumn((await get('/manage/log?from=2026-03-03&to=2026-03-04')).body)).toEqual(['scheduler', 'scheduler', 'scheduler', 'scheduler'])
    expect(whoColumn((await get('/manage/log?from=2026-03-05')).body)).toEqual(['boss'])
    expect(whoColumn((await get('/manage/log?to=2026-03-01')).body)).toEqual(['boss', 'boss', 'boss'])
    const none = await get('/manage/log?actor=nobody')
    expect(mainOf(none.body)).toContain('<p class="empty" data-testid="log-empty">No entries match these filters.</p>')
    expect(countLine(none.body)).toBe('No entries match these filters.')

    const api = await site.app.inject({ url: '/api/maintenance/log?actor=deputy&outcome=refused&channel=api&from=2026-03-02T00:00:00Z&to=2026-03-03T00:00:00Z', headers: { authorization: BOSS } })
    expect(api.statusCode).toBe(200)
    expect(api.json().entries.map((entry: { actor: string, at: string }) => [entry.actor, entry.at])).toEqual([['deputy', '2026-03-02T23:59:59.000Z'], ['deputy', '2026-03-02T23:59:58.000Z']])
    const badApi = await site.app.inject({ url: '/api/maintenance/log?outcome=maybe', headers: { authorization: BOSS } })
    expect(badApi.statusCode).toBe(400)
    expect(badApi.json()).toMatchObject({ code: 'QUIESCE_INVALID_INPUT' })
  })

  it('refuses filters that make no sense with 400 and says which', async () => {
    const response = await get('/manage/log?outcome=maybe&channel=fax&from=2026-02-30&to=yesterday')
    expect(response.statusCode).toBe(400)
    const main = mainOf(response.body)
    expect(main).toContain('<p class="field-error" id="outcome-error">Outcome must be applied or refused.</p>')
    expect(main).toContain('<p class="field-error" id="channel-error">Via must be web, api, cli or scheduler.</p>')
    expect(main).toContain('<p class="field-error" id="from-error">From must be a day like 2026-12-02.</p>')
    expect(main).toContain('<p class="field-error" id="to-error">To must be a day like 2026-12-02.</p>')
    expect(main).not.toContain('<table')
    const control = await get('/manage/log?actor=bo%00ss')
    expect(control.statusCode).toBe(400)
    expect(mainOf(control.body)).toContain('<p class="field-error" id="actor-error">Who must be a name.</p>')
    expect((await get('/manage/log.csv?actor=bo%00ss')).statusCode).toBe(400)
    const api = await site.app.inject({ url: '/api/maintenance/log?actor=bo%00ss', headers: { authorization: BOSS } })
    expect(api.statusCode).toBe(400)
    expect(api.json()).toMatchObject({ code: 'QUIESCE_INVALID_INPUT', fields: { actor: expect.any(String) } })
    const backwards = await get('/manage/log?from=2026-03-05&to=2026-03-01')
    expect(backwards.statusCode).toBe(400)
    expect(mainOf(backwards.body)).toContain('To must not be before the first day.')
  })

  it('pages through a filter, 50 at a time, older and newer, keeping the filter in every link', async () => {
    await addEntries(120, { actor: 'pager', channel: 'cli', outcome: 'applied', at: '2026-04-01T00:00:00.000Z', reason: 'paging' })
    const ids = (await site.database.writer.selectFrom('maintenance_log').select('id').where('actor', '=', 'pager').orderBy('id', 'desc').execute()).map((row) => row.id)
    const rowIds = (html: string) => [...mainOf(html).matchAll(/<time datetime="2026-04-01T(\d\d:\d\d:\d\d)/g)].map((match) => match[1])
    const first = await get('/manage/log?actor=pager')
    expect(countLine(first.body)).toBe('120 entries match these filters; showing 50, from 2026-04-01 00:01 UTC to 2026-04-01 00:01 UTC.')
    expect(rowIds(first.body)).toHaveLength(50)
    const main = mainOf(first.body)
    expect(main).toContain(`<a rel="next" href="/manage/log?actor=pager&amp;before=${ids[49]}">Older →</a>`)
    expect(main).not.toContain('Newer')
    expect(main).toContain('<a class="csv-link" href="/manage/log.csv?actor=pager" download>Download as CSV</a>')

    const second = await get(`/manage/log?actor=pager&before=${ids[49]}`)
    expect(rowIds(second.body)).toHaveLength(50)
    expect(mainOf(second.body)).toContain(`<a rel="prev" href="/manage/log?actor=pager&amp;after=${ids[50]}">← Newer</a>`)
    expect(mainOf(second.body)).toContain('<a href="/manage/log?actor=pager">« Newest</a>')
    expect(mainOf(second.body)).toContain(`before=${ids[99]}">Older →</a>`)
    const third = await get(`/manage/log?actor=pager&before=${ids[99]}`)
    expect(rowIds(third.body)).toHaveLength(20)
    expect(mainOf(third.body)).not.toContain('Older →')

    // Newer from the third page is the second page again; newer from the second is the first.
    expect(rowIds((await get(`/manage/log?actor=pager&after=${ids[100]}`)).body)).toEqual(rowIds(second.body))
    const back = await get(`/manage/log?actor=pager&after=${ids[50]}`)
    expect(rowIds(back.body)).toEqual(rowIds(first.body))
    expect(mainOf(back.body)).not.toContain('← Newer')
    expect(mainOf(back.body)).toContain(`before=${ids[49]}">Older →</a>`)
  })

  it('exports the filtered log as CSV, streamed, managers only; cells a spreadsheet would run are neutralised', async () => {
    await addEntries(1, { actor: 'csv-test', channel: 'web', outcome: 'refused', at: '2026-05-01T12:00:00.000Z', reason: '=HYPERLINK("http://evil.example","click")', detail: '@SUM(1+1)' })
    await addEntries(1, { actor: 'csv-test', channel: 'api', outcome: 'applied', at: '2026-05-01T12:30:00.000Z', reason: 'Disk move, "phase 2"\nsecond line' })
    await addEntries(1, { actor: 'csv-test', channel: 'api', outcome: 'applied', at: '2026-05-02T08:00:00.000Z', reason: '-1 day' })

    const response = await get('/manage/log.csv?actor=csv-test&to=2026-05-01')
    expect(response.statusCode).toBe(200)
    expect(response.headers['content-type']).toBe('text/csv; charset=utf-8')
    expect(response.headers['content-disposition']).toMatch(/^attachment; filename="quiesce-maintenance-log-\d{8}-\d{4}\.csv"$/)
    const ids = (await site.database.writer.selectFrom('maintenance_log').select('id').where('actor', '=', 'csv-test').orderBy('id').execute()).map((row) => row.id)
    expect(response.body).toBe([
      'id,at,actor,channel,instance,from_mode,to_mode,reason,until,expected_version,new_version,outcome,detail',
      `"${ids[1]}","2026-05-01T12:30:00.000Z","csv-test","api","elsewhere","normal","concurrent","Disk move, ""phase 2""\nsecond line",,"1","2","applied",`,
      `"${ids[0]}","2026-05-01T12:00:00.000Z","csv-test","web","elsewhere","normal","concurrent","'=HYPERLINK(""http://evil.example"",""click"")",,"1",,"refused","'@SUM(1+1)"`,
      '',
    ].join('\r\n'))
    expect((await get('/manage/log.csv?actor=csv-test&from=2026-05-02')).body).toContain('"\'-1 day"')

    expect((await get('/manage/log.csv', {})).statusCode).toBe(401)
    const ann = await signedInBrowser(site.app, 'member')
    expect((await get('/manage/log.csv', { cookie: ann.cookie })).statusCode).toBe(403)
    expect((await get('/manage/log.csv?from=never')).statusCode).toBe(400)
  })

  it('the CSV of a long log has every entry, in order, newest first', async () => {
    await addEntries(1100, { actor: 'bulk', channel: 'cli', outcome: 'applied', at: '2026-06-01T00:00:00.000Z' })
    const lines = (await get('/manage/log.csv?actor=bulk', { authorization: BOSS })).body.split('\r\n')
    expect(lines).toHaveLength(1 + 1100 + 1)
    const ats = lines.slice(1, -1).map((line) => line.split(',')[1])
    expect(ats[0]).toBe('"2026-06-01T00:18:19.000Z"')
    expect(ats.at(-1)).toBe('"2026-06-01T00:00:00.000Z"')
    expect([...ats].sort().reverse()).toEqual(ats)
  })
})
