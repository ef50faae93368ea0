import { expect, test, type Page } from '@playwright/test'

/**
 * The WCAG contrast ratio of the header search box's placeholder against what is behind it
 * (the box's translucent background over the header's). Plain script: the e2e code is
 * type-checked without the DOM library.
 */
function placeholderContrast (page: Page): Promise<number> {
  return page.evaluate<number>(`(() => {
    const input = document.getElementById('site-search')
    const rgba = (color) => { const [r, g, b, a] = color.match(/[\\d.]+/g).map(Number); return [r, g, b, a === undefined ? 1 : a] }
    const over = (top, bottom) => top.slice(0, 3).map((c, i) => c * top[3] + bottom[i] * (1 - top[3])).concat(1)
    const layers = []
    for (let el = input; el; el = el.parentElement) {
      const color = rgba(getComputedStyle(el).backgroundColor)
      if (color[3] > 0) layers.push(color)
      if (color[3] === 1) break
    }
    let background = [255, 255, 255, 1]
    for (const layer of layers.reverse()) background = over(layer, background)
    const text = over(rgba(getComputedStyle(input, '::placeholder').color), background)
    const luminance = (c) => { const [r, g, b] = c.slice(0, 3).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4 }); return 0.2126 * r + 0.7152 * g + 0.0722 * b }
    const [light, dark] = [luminance(text), luminance(background)].sort((a, b) => b - a)
    return (light + 0.05) / (dark + 0.05)
  })()`)
}

test('a visitor pages through more hits than one page holds, numbered on, with snippets that keep headings apart', async ({ page }) => {
  await page.goto('/')
  await page.getByLabel('Search the catalog').fill('specification')
  await page.getByRole('button', { name: 'Search' }).click()
  const status = page.getByRole('status').filter({ hasText: 'match' })
  await expect(status).toHaveText(/^[\d,]+ documents match “specification”\. Showing 1–20, best first\.$/)
  const total = Number((await status.textContent())!.replace(/ documents.*$/s, '').replaceAll(',', ''))
  expect(total).toBeGreaterThan(40)
  const hits = page.getByRole('main').getByRole('listitem')
  await expect(hits).toHaveCount(20)
  // The heading of a document is kept apart from the text around it.
  await expect(hits.locator('.snippet').filter({ hasText: /Specification · Material: / }).first()).toBeVisible()
  await expect(hits.locator('.snippet').filter({ hasText: /Specification Material/ })).toHaveCount(0)
  const firstPage = await hits.getByRole('link').allTextContents()

  const pages = page.getByRole('navigation', { name: 'Pages of results' })
  await expect(pages).toContainText(`Page 1 of ${Math.ceil(total / 20).toLocaleString('en')}`)
  await pages.getByRole('link', { name: 'Next →' }).click()
  await expect(status).toContainText('Showing 21–40, best first.')
  await expect(page.getByRole('main').getByRole('list')).toHaveAttribute('start', '21')
  await expect(hits).toHaveCount(20)
  const secondPage = await hits.getByRole('link').allTextContents()
  expect(secondPage.filter((title) => firstPage.includes(title))).toEqual([])

  // Numbered on from the first page, each number inside the page's text column (not in its margin).
  const numbers = hits.locator('.hit-number')
  await expect(numbers).toHaveText(Array.from({ length: 20 }, (_, i) => `${21 + i}.`))
  await expect(page.getByRole('main').getByRole('list')).toHaveCSS('list-style-type', 'none')
  const column = await page.getByRole('heading', { level: 1, name: 'Search' }).boundingBox()
  for (const number of await numbers.all()) expect((await number.boundingBox())!.x).toBeGreaterThanOrEqual(column!.x)

  await page.getByRole('link', { name: '← Previous' }).click()
  await expect(status).toContainText('Showing 1–20, best first.')
  expect(await hits.getByRole('link').allTextContents()).toEqual(firstPage)
})

test('the home and search pages show one search box, and the header\'s placeholder is readable (WCAG AA)', async ({ page }) => {
  await page.goto('/')
  await expect(page.getByRole('searchbox')).toHaveCount(1)
  await expect(page.getByRole('searchbox')).toHaveAccessibleName('Search the catalog')
  await page.goto('/search?q=hinge')
  await expect(page.getByRole('searchbox')).toHaveCount(1)

  await page.goto('/docs')
  const header = page.getByRole('searchbox', { name: 'Search documents' })
  await expect(header).toHaveAttribute('placeholder', 'Search documents')
  expect(await placeholderContrast(page)).toBeGreaterThanOrEqual(4.5)
})
