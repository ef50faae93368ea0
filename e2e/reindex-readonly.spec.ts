import { expect, test, type Page } from '@playwright/test'
import { SEEDED_DOCUMENTS, users } from './fixtures.js'
import { backToNormal, basicCredentials, signIn, switchMode, uniqueSuffix, writeDocument } from './steps.js'

/** What the task page's progress bar showed, each time it changed. */
interface ProgressShown {
  at: number
  value: number
  max: number
  percent: string
  count: string
  rate: string
  eta: string
  state: string
}

/**
 * Records every change of the task page's progress bar and the figures beside it (which
 * public/quiesce.js updates from the task's event stream), with the time it happened, from now
 * until the page is left. Plain script: the e2e code is type-checked without the DOM library.
 */
async function recordProgress (page: Page): Promise<() => Promise<ProgressShown[]>> {
  await page.evaluate(`(() => {
    const panel = document.querySelector('[data-task-progress]')
    const bar = panel.querySelector('progress')
    const field = (name) => panel.querySelector('[data-progress="' + name + '"]').textContent.trim()
    const shown = window.progressShown = []
    const snapshot = () => shown.push({
      at: Date.now(), value: bar.value, max: bar.max, percent: field('percent'), count: field('count'),
      rate: field('rate'), eta: field('eta'), state: field('state'),
    })
    snapshot()
    new MutationObserver(snapshot).observe(panel, { subtree: true, attributes: true, childList: true, characterData: true })
  })()`)
  return () => page.evaluate<ProgressShown[]>('window.progressShown')
}

let taskId: string | undefined

test.afterEach(async ({ request }) => {
  // A rebuild left running by a failed story would slow down the next ones.
  if (taskId !== undefined) await request.post(`/api/tasks/${taskId}/cancel`, { headers: { authorization: basicCredentials(users.greta) } })
  taskId = undefined
  await backToNormal(request)
})

test('End users browse read-only during reindex', async ({ browser, page: manager }) => {
  // A whole story around a real rebuild of the seeded catalog: more than the default 30 s when
  // the machine is busy (the rebuild alone may take its 20 s below).
  test.setTimeout(90_000)
  const suffix = uniqueSuffix()
  const oldWord = `scupper${suffix}`
  const newWord = `bilgepump${suffix}`
  const title = `Cockpit drains ${suffix}`
  const reason = `Rebuilding the catalog ${suffix}`
  const firstText = `Two ${oldWord} drains empty the cockpit.`
  const changedText = `${firstText}\n\nA manual ${newWord} backs them up in heavy weather.`

  // A member has written a document and is editing it.
  const memberContext = await browser.newContext()
  const member = await memberContext.newPage()
  await member.goto('/')
  await signIn(member, users.hugo)
  await writeDocument(member, { title, text: firstText })
  await member.getByRole('link', { name: 'Edit' }).click()
  await expect(member.getByRole('heading', { level: 1, name: 'Edit document' })).toBeVisible()

  // The manager signs in and switches the site to read-only maintenance.
  await manager.goto('/')
  await signIn(manager, users.greta)
  await manager.getByRole('link', { name: 'Manage' }).click()
  await switchMode(manager, 'Concurrent (read-only)', reason)
  await expect(manager.getByTestId('maintainer')).toHaveText(users.greta.name)

  // A visitor is reading the site, and sees why nothing changes.
  const visitorContext = await browser.newContext()
  const visitor = await visitorContext.newPage()
  const failures: string[] = []
  visitor.on('pageerror', (error) => failures.push(`page error: ${error.message}`))
  visitor.on('console', (message) => { if (message.type() === 'error') failures.push(`console: ${message.text()}`) })
  visitor.on('response', (response) => { if (response.status() >= 400) failures.push(`${response.status()} ${response.url()}`) })
  await visitor.goto('/')
  await expect(visitor.locator('#maintenance-banner')).toContainText(`Concurrent (read-only) maintenance: ${reason}`)

  // On Manage → Tasks, the manager starts a rebuild of the catalog and watches its progress.
  await manager.getByRole('navigation', { name: 'Control panel' }).getByRole('link', { name: 'Tasks' }).click()
  await expect(manager.getByRole('heading', { level: 1, name: 'Tasks' })).toBeVisible()
  await manager.getByRole('button', { name: 'Rebuild the catalog' }).click()
  await expect(manager.getByRole('heading', { level: 1, name: /^Catalog rebuild #\d+$/ })).toBeVisible()
  taskId = /\/manage\/tasks\/(\d+)$/.exec(manager.url())?.[1]
  expect(taskId, manager.url()).toBeDefined()
  const bar = manager.getByRole('progressbar', { name: `Progress of task ${taskId}` })
  await expect(bar).toBeVisible()
  const progressShown = await recordProgress(manager)
  const state = manager.locator('[data-progress="state"]')
  await expect(state).toHaveText('running')

  // Meanwhile the visitor browses and searches, and nothing fails.
  await visitor.getByLabel('Search the catalog').fill('brass hinge')
  await visitor.getByRole('button', { name: 'Search' }).click()
  await expect(visitor.getByRole('status').filter({ hasText: 'match' })).toHaveText(/^[\d,]+ documents match “brass hinge”\. Showing 1–20, best first\.$/)
  const firstHit = visitor.getByRole('listitem').first().getByRole('link')
  const hitTitle = await firstHit.textContent() ?? ''
  await firstHit.click()
  await expect(visitor.getByRole('heading', { level: 1, name: hitTitle })).toBeVisible()
  await expect(visitor.getByRole('heading', { level: 2, name: 'Specification' })).toBeVisible()
  await visitor.getByLabel('Search documents').fill(oldWord)
  await visitor.getByLabel('Search documents').press('Enter')
  await expect(visitor.getByRole('status').filter({ hasText: 'match' })).toHaveText(`1 document matches “${oldWord}”.`)
  await visitor.getByRole('link', { name: title }).click()
  await expect(visitor.getByText(firstText)).toBeVisible()
  expect(failures).toEqual([])
  const visitorDoneAt = Date.now()

  // Meanwhile the member saves a change: refused, and the text is still there to save later.
  await member.getByLabel('Text').fill(changedText)
  await member.getByRole('button', { name: 'Save' }).click()
  const notSaved = member.getByTestId('not-saved')
  await expect(notSaved).toContainText('The site is in Concurrent (read-only) maintenance, so changes cannot be saved until it ends.')
  await expect(notSaved).toContainText('Your text is still below, exactly as you typed it.')
  await expect(member.getByLabel('Title', { exact: true })).toHaveValue(title)
  await expect(member.getByLabel('Text')).toHaveValue(changedText)
  const memberRefusedAt = Date.now()

  // The rebuild completes: every document of the catalog, 100 %.
  await expect(state).toHaveText('done', { timeout: 20_000 })
  await expect(manager.locator('[data-progress="percent"]')).toHaveText('100%')
  const count = await manager.locator('[data-progress="count"]').textContent() ?? ''
  const [, done, total] = /^([\d,]+) of ([\d,]+)$/.exec(count) ?? []
  expect(done, count).toBe(total)
  expect(Number(total?.replaceAll(',', ''))).toBeGreaterThanOrEqual(SEEDED_DOCUMENTS)
  await expect(bar).toHaveJSProperty('value', Number(total?.replaceAll(',', '')))

  // The bar advanced while the rebuild ran: it showed at least two counts between none and all,
  // growing, with a rate and the time left; and the visitor and the member were served meanwhile.
  const shown = await progressShown()
  const running = shown.filter((step) => step.state === 'running' && step.value > 0 && step.value < step.max)
  const values = [...new Set(running.map((step) => step.value))]
  expect(values.length, JSON.stringify(shown)).toBeGreaterThanOrEqual(2)
  expect(values, 'the bar never goes back').toEqual([...values].sort((a, b) => a - b))
  expect(new Set(running.map((step) => step.percent)).size, JSON.stringify(shown)).toBeGreaterThanOrEqual(2)
  expect(running.some((step) => /^\d[\d,]* per second$/.test(step.rate) && /^about \d+ s left$/.test(step.eta)), JSON.stringify(shown)).toBe(true)
  const doneAt = shown.find((step) => step.state === 'done')!.at
  expect(visitorDoneAt, 'the visitor browsed while the catalog was rebuilt').toBeLessThan(doneAt)
  expect(memberRefusedAt, 'the member was refused while the catalog was rebuilt').toBeLessThan(doneAt)

  // The manager returns the site to normal.
  await manager.getByRole('navigation', { name: 'Control panel' }).getByRole('link', { name: 'Maintenance' }).click()
  await switchMode(manager, 'Normal')
  await expect(member.locator('#maintenance-banner')).toBeHidden()

  // The member submits the same form again, and now it is saved.
  await member.getByRole('button', { name: 'Save' }).click()
  await expect(member.getByRole('status').filter({ hasText: 'Saved.' })).toHaveText('Saved.')
  await expect(member.getByText(`Version 2 · last changed by ${users.hugo.name}`)).toBeVisible()

  // A search for a new word of the edit finds the document, in the rebuilt catalog.
  await visitor.getByLabel('Search documents').fill(newWord)
  await visitor.getByLabel('Search documents').press('Enter')
  await expect(visitor.getByRole('status').filter({ hasText: 'match' })).toHaveText(`1 document matches “${newWord}”.`)
  const hit = visitor.getByRole('listitem').filter({ has: visitor.getByRole('link', { name: title }) })
  await expect(hit.locator('mark')).toHaveText([newWord])
  await hit.getByRole('link', { name: title }).click()
  await expect(visitor.getByText(`A manual ${newWord} backs them up in heavy weather.`)).toBeVisible()
  expect(failures).toEqual([])

  await visitorContext.close()
  await memberContext.close()
})
