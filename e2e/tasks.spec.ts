import { readFile } from 'node:fs/promises'
import { expect, test } from '@playwright/test'
import { users } from './fixtures.js'
import { backToNormal, basicCredentials, signIn } from './steps.js'

test.afterEach(async ({ request }) => {
  await backToNormal(request)
})

test('a manager learns what each task produces, downloads an export, and cancels a waiting rebuild from the list', async ({ browser, request }) => {
  const context = await browser.newContext({ acceptDownloads: true })
  const quinn = await context.newPage()
  await quinn.goto('/')
  await signIn(quinn, users.quinn)
  await quinn.getByRole('link', { name: 'Manage' }).click()
  await quinn.getByRole('navigation', { name: 'Control panel' }).getByRole('link', { name: 'Tasks' }).click()

  // Each task says what it produces and where.
  const exportKind = quinn.getByRole('region', { name: 'Export all data' })
  await expect(exportKind).toContainText('Produces: a file to download from the task\'s page when it is done: JSON Lines, UTF-8 (quiesce-export format 1, .jsonl)')
  await expect(quinn.getByRole('region', { name: 'Rebuild the catalog' })).toContainText('Produces: nothing to download.')

  // The export: its page offers the file when it is done.
  await exportKind.getByRole('button', { name: 'Export all data' }).click()
  await expect(quinn.getByRole('heading', { level: 1, name: /^Export #\d+$/ })).toBeVisible()
  const link = quinn.getByRole('link', { name: /^Download quiesce-export-.*\.jsonl$/ })
  await expect(link).toBeVisible({ timeout: 30_000 })
  await expect(quinn.getByRole('main')).toContainText('JSON Lines,')
  const [download] = await Promise.all([quinn.waitForEvent('download'), link.click()])
  expect(download.suggestedFilename()).toMatch(/^quiesce-export-.*\.jsonl$/)
  const first = (await readFile((await download.path())!, 'utf8')).split('\n')[0]!
  expect(JSON.parse(first)).toMatchObject({ format: 'quiesce-export', version: 1 })

  // Someone else is maintaining the site: a rebuild quinn starts waits, and she cancels it from the list.
  const state = await (await request.get('/api/maintenance')).json() as { version: number }
  const switched = await request.put('/api/maintenance', { headers: { authorization: basicCredentials(users.rescue) }, data: { mode: 'concurrent', reason: 'tasks story', expectedVersion: state.version } })
  expect(switched.status()).toBe(200)
  await quinn.getByRole('navigation', { name: 'Control panel' }).getByRole('link', { name: 'Tasks' }).click()
  await quinn.getByRole('region', { name: 'Rebuild the catalog' }).getByRole('button', { name: 'Rebuild the catalog' }).click()
  const title = (await quinn.getByRole('heading', { level: 1 }).textContent())!
  expect(title).toMatch(/^Catalog rebuild #\d+$/)
  await expect(quinn.getByText('waiting: the site is in maintenance')).toBeVisible({ timeout: 15_000 })
  await quinn.getByRole('link', { name: 'All tasks →' }).click()
  const row = quinn.getByRole('table', { name: 'Recent tasks' }).getByRole('row').filter({ hasText: title })
  await expect(row.getByRole('cell', { name: 'paused' })).toBeVisible()
  await row.getByRole('button', { name: `Cancel ${title}` }).click()
  await expect(quinn.getByRole('heading', { level: 1, name: title })).toBeVisible()
  await expect(quinn.getByRole('main')).toContainText(/State: cancell(ing|ed)/)
  await quinn.getByRole('link', { name: 'All tasks →' }).click()
  await expect(quinn.getByRole('table', { name: 'Recent tasks' }).getByRole('row').filter({ hasText: title }).getByRole('cell', { name: /^cancell(ing|ed)$/ })).toBeVisible()
  await expect(quinn.getByRole('table', { name: 'Recent tasks' }).getByRole('row').filter({ hasText: title }).getByRole('button', { name: `Cancel ${title}` })).toHaveCount(0)
  await context.close()
})
