import AxeBuilder from '@axe-core/playwright'
import { expect, test, type APIRequestContext, type Browser, type Page } from '@playwright/test'
import { users, type TestUser } from './fixtures.js'
import { backToNormal, basicCredentials, minutesFromNow, setMode, signedInAs, uniqueSuffix } from './steps.js'

/** What axe found on one page that a person would be stopped by (impact serious or critical). */
interface Finding { page: string, rule: string, impact: string, help: string, targets: string[] }

async function seriousFindings (page: Page, label: string): Promise<Finding[]> {
  const results = await new AxeBuilder({ page }).analyze()
  return results.violations
    .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
    .map((violation) => ({
      page: label,
      rule: violation.id,
      impact: violation.impact!,
      help: violation.help,
      targets: violation.nodes.map((node) => node.target.join(' ')),
    }))
}

async function personPage (browser: Browser, user: TestUser | null): Promise<Page> {
  const context = await browser.newContext(user === null ? {} : signedInAs(user))
  return context.newPage()
}

/** Every page of the site, as a visitor, a member and the maintainer (a manager) see it. */
async function checkEveryPage (browser: Browser, request: APIRequestContext, mode: 'normal' | 'concurrent' | 'exclusive'): Promise<Finding[]> {
  const suffix = uniqueSuffix()
  const slug = `axe-${mode}-${suffix}`
  const created = await request.put(`/api/docs/${slug}`, {
    headers: { authorization: basicCredentials(users.jon) },
    data: { title: `Accessible fittings ${suffix}`, body: '## Specification\n\n- **Material:** brass\n\nA [link](https://example.com) and `code`.\n\n| a | b |\n|---|---|\n| 1 | 2 |' },
  })
  expect(created.status(), await created.text()).toBe(201)
  const task = await request.post('/api/tasks/export', { headers: { authorization: basicCredentials(users.jon) } })
  expect(task.status(), await task.text()).toBe(202)
  const { id: taskId } = await task.json() as { id: number }
  // Its page reloads itself when the export is done: let it be done before the check.
  await expect.poll(async () => (await (await request.get(`/api/tasks/${taskId}`, { headers: { authorization: basicCredentials(users.jon) } })).json() as { state: string }).state, { timeout: 30_000 }).toBe('done')
  if (mode !== 'normal') await setMode(request, users.jon, mode, { reason: `Accessibility check ${suffix}`, until: minutesFromNow(40) })

  const findings: Finding[] = []
  const visit = async (page: Page, who: string, url: string) => {
    await page.goto(url)
    await expect(page.locator('body')).toBeVisible()
    findings.push(...await seriousFindings(page, `${mode} · ${who} · ${url}`))
  }

  const visitor = await personPage(browser, null)
  for (const url of ['/', '/docs', `/docs/${slug}`, '/search?q=brass', '/search?q=brass&page=2', '/login', '/maintenance', '/no-such-page']) await visit(visitor, 'visitor', url)

  const member = await personPage(browser, users.rafa)
  for (const url of ['/', `/docs/${slug}`, `/docs/${slug}/edit`, '/docs/new']) await visit(member, 'member', url)
  if (mode !== 'exclusive') {
    // The "not saved" page: refused by maintenance in Concurrent mode, by a missing title in Normal.
    await member.goto(`/docs/${slug}/edit`)
    if (mode === 'normal') await member.getByLabel('Title', { exact: true }).fill('')
    await member.getByRole('button', { name: /save/i }).click()
    await expect(member.getByRole('heading', { name: 'Not saved' })).toBeVisible()
    findings.push(...await seriousFindings(member, `${mode} · member · not-saved page`))
  }

  const maintainer = await personPage(browser, users.jon)
  for (const url of ['/', `/docs/${slug}`, `/docs/${slug}/edit`, '/docs/new', '/manage', '/manage/log', '/manage/users', '/manage/sign-ins', '/manage/tasks', `/manage/tasks/${taskId}`, '/maintenance']) {
    await visit(maintainer, 'maintainer', url)
  }
  // The page that asks before closing the site (in Exclusive mode the site is closed already).
  if (mode !== 'exclusive') {
    await maintainer.goto('/manage')
    const control = maintainer.getByRole('region', { name: 'Change the mode' })
    await control.getByRole('radio', { name: 'Exclusive', exact: true }).check()
    await control.getByRole('button', { name: 'Apply' }).click()
    await expect(maintainer.getByRole('heading', { level: 1, name: 'Close the site?' })).toBeVisible()
    findings.push(...await seriousFindings(maintainer, `${mode} · maintainer · Exclusive confirmation`))
  }
  // The one-time password reset link as the manager sees it, and the page it opens.
  await maintainer.goto('/manage/users')
  await maintainer.getByRole('row').filter({ hasText: users.vera.name }).getByRole('button', { name: `Reset password: ${users.vera.name}` }).click()
  const shown = maintainer.getByRole('region', { name: `Password reset link for ${users.vera.name}` })
  await expect(shown).toBeVisible()
  findings.push(...await seriousFindings(maintainer, `${mode} · maintainer · reset link shown`))
  await visit(visitor, 'visitor', await shown.getByLabel('Link').inputValue())
  for (const page of [visitor, member, maintainer]) await page.context().close()
  return findings
}

test.afterEach(async ({ request }) => {
  await backToNormal(request)
})

for (const mode of ['normal', 'concurrent', 'exclusive'] as const) {
  test(`every page passes an accessibility check (axe: no serious or critical violation) in ${mode} mode, for a visitor, a member and the maintainer`, async ({ browser, request }) => {
    // About 35 pages through axe, twice over for some: minutes when the machine is busy.
    test.setTimeout(240_000)
    const findings = await checkEveryPage(browser, request, mode)
    expect(findings, JSON.stringify(findings, null, 2)).toEqual([])
  })
}
