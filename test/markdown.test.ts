import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { markdownToText, renderMarkdown } from '../app/content/markdown.js'
import { documentRow, mainOf, startTestSite, type Browser, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { addPrincipals, basicOf, signedInBrowser } from './helpers/principals.js'

describe('renderMarkdown', () => {
  it('renders ordinary Markdown', () => {
    expect(renderMarkdown('## Size\n\n*Oak*, **40 mm**, `code`')).toBe(
      '<h2>Size</h2>\n<p><em>Oak</em>, <strong>40 mm</strong>, <code>code</code></p>\n')
  })

  it.each([
    ['<script>alert(1)</script>', '<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n'],
    ['<img src=x onerror=alert(1)>', '<p>&lt;img src=x onerror=alert(1)&gt;</p>\n'],
    ['<svg onload=alert(1)>', '<p>&lt;svg onload=alert(1)&gt;</p>\n'],
    ['<div>\n<script>alert(1)</script>\n</div>', '<p>&lt;div&gt;\n&lt;script&gt;alert(1)&lt;/script&gt;\n&lt;/div&gt;</p>\n'],
    ['`<script>`', '<p><code>&lt;script&gt;</code></p>\n'],
  ])('escapes raw HTML: %j', (source, html) => {
    expect(renderMarkdown(source)).toBe(html)
  })

  it('escapes an <iframe> (its address may become a plain link, never a frame)', () => {
    const html = renderMarkdown('<iframe src="https://evil.example/"></iframe>')
    expect(html).not.toContain('<iframe')
    expect(html).toContain('&lt;iframe')
    expect(html).toContain('&lt;/iframe&gt;')
  })

  it('escapes raw HTML in block form too', () => {
    const html = renderMarkdown('<iframe src="https://evil.example/"></iframe>\n\n<a href="javascript:alert(1)">x</a>\n\n<style>body{}</style>')
    expect(html).not.toMatch(/<(iframe|a href="javascript|style)/)
  })

  it.each([
    '[x](javascript:alert(1))',
    '[x](JavaScript:alert(1))',
    '[x](jav&#x61;script:alert(1))',
    '[x](  javascript:alert(1))',
    '[x](vbscript:msgbox(1))',
    '[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)',
    '![x](data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=)',
    '<javascript:alert(1)>',
    '[x][ref]\n\n[ref]: javascript:alert(1)',
  ])('drops the dangerous link %j', (source) => {
    const html = renderMarkdown(source)
    expect(html).not.toMatch(/<a |<img /)
    expect(html.toLowerCase()).not.toMatch(/(href|src)="\s*(javascript|vbscript|data:text)/)
  })

  it('keeps normal links, with rel="nofollow noopener"', () => {
    expect(renderMarkdown('[the shop](https://example.com/a?b=1&c=2 "Our \\"shop\\"")')).toBe(
      '<p><a href="https://example.com/a?b=1&amp;c=2" title="Our &quot;shop&quot;" rel="nofollow noopener">the shop</a></p>\n')
    expect(renderMarkdown('[mail](mailto:ann@example.com)')).toBe(
      '<p><a href="mailto:ann@example.com" rel="nofollow noopener">mail</a></p>\n')
    expect(renderMarkdown('[here](/docs/oak-shelf)')).toBe(
      '<p><a href="/docs/oak-shelf" rel="nofollow noopener">here</a></p>\n')
  })

  it('turns bare addresses into links with the same rel', () => {
    expect(renderMarkdown('see https://example.org now')).toBe(
      '<p>see <a href="https://example.org" rel="nofollow noopener">https://example.org</a> now</p>\n')
  })

  it('keeps images from data: URLs of raster types (CSP allows img-src data:)', () => {
    expect(renderMarkdown('![dot](data:image/png;base64,iVBORw0KGgo=)')).toBe(
      '<p><img src="data:image/png;base64,iVBORw0KGgo=" alt="dot"></p>\n')
  })
})

describe('markdownToText', () => {
  it('keeps the words and drops the markup, with the blocks kept apart so a heading does not run into the text', () => {
    expect(markdownToText('# Title\n\nSome *oak* and [a link](https://example.com).\n\n- one\n- two')).toBe('Title · Some oak and a link. · one · two')
    expect(markdownToText('## Specification\n\n- **Material:** oak\n- **Size:** 40 mm\n\n> quoted\n\n| a | b |\n|---|---|\n| 1 | 2 |')).toBe('Specification · Material: oak · Size: 40 mm · quoted · a · b · 1 · 2')
    expect(markdownToText('half*bold* and `code`d')).toBe('halfbold and coded')
  })

  it('decodes entities, so raw HTML in a document is indexed as the text it shows', () => {
    expect(markdownToText('Fish & chips <b>bold</b>')).toBe('Fish & chips <b>bold</b>')
  })
})

/** The only scripts on a page are the site's own files, loaded from /static/; nothing inline. */
function expectOnlyOwnScripts (html: string) {
  for (const [tag] of html.matchAll(/<script\b[^>]*>/gi)) expect(tag).toMatch(/^<script src="\/static\/[^"]+"( defer)?>$/)
  expect(html).not.toMatch(/<script>/i)
  expect(mainOf(html)).not.toMatch(/<script/i)
}

describe.each(DATABASE_KINDS)('documents are shown safely on %s', (kind) => {
  const hostileBody = [
    '<script>alert(1)</script>',
    '',
    '[x](javascript:alert(1))',
    '',
    '<img src=x onerror=alert(2)>',
    '',
    '<iframe src="https://evil.example/"></iframe>',
  ].join('\n')
  const hostileTitle = '<b>Bold</b> & "quoted" \'title\' hostile'
  const escapedTitle = '&lt;b&gt;Bold&lt;/b&gt; &amp; &quot;quoted&quot; &#39;title&#39; hostile'

  let site: TestSite
  let ann: Browser

  beforeAll(async () => {
    site = await startTestSite(kind)
    await addPrincipals(site, ['member'])
    ann = await signedInBrowser(site.app, 'member')
    const response = await site.app.inject({
      method: 'PUT',
      url: '/api/docs/hostile',
      headers: { authorization: basicOf('member') },
      payload: { title: hostileTitle, body: hostileBody },
    })
    expect(response.statusCode).toBe(201)
  })
  afterAll(async () => { await site.close() })

  it('stores the text verbatim', async () => {
    expect(await documentRow(site.database, 'hostile')).toMatchObject({ title: hostileTitle, body: hostileBody })
    const api = (await site.app.inject('/api/docs/hostile')).json()
    expect(api.title).toBe(hostileTitle)
    expect(api.body).toBe(hostileBody)
  })

  it('the document page runs no script and links to no javascript:', async () => {
    const response = await site.app.inject('/docs/hostile')
    expect(response.statusCode).toBe(200)
    expectOnlyOwnScripts(response.body)
    expect(response.body).not.toContain('href="javascript:')
    expect(response.body).not.toContain('<img')
    expect(response.body).not.toContain('<iframe')
    expect(response.body).not.toContain('<b>')
    const main = mainOf(response.body)
    expect(main).toContain('<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>')
    expect(main).toContain('<p>[x](javascript:alert(1))</p>')
    expect(main).toContain('<p>&lt;img src=x onerror=alert(2)&gt;</p>')
    expect(main).toContain(`<h1>${escapedTitle}</h1>`)
    expect(response.body).toContain(`<title>${escapedTitle} · Quiesce</title>`)
    expect(response.headers['content-security-policy']).toContain("script-src 'self'")
  })

  it('the title is escaped in the home page and the list', async () => {
    for (const url of ['/', '/docs']) {
      const response = await site.app.inject(url)
      expect(response.body).not.toContain('<b>')
      expect(mainOf(response.body)).toContain(`<a href="/docs/hostile">${escapedTitle}</a>`)
    }
  })

  it('the title and the snippet are escaped in search results', async () => {
    const response = await site.app.inject('/search?q=hostile')
    expect(response.statusCode).toBe(200)
    expect(response.body).not.toContain('<b>')
    expect(mainOf(response.body)).toContain(`<a href="/docs/hostile">${escapedTitle}</a>`)

    const bySnippet = await site.app.inject('/search?q=alert')
    expectOnlyOwnScripts(bySnippet.body)
    const snippet = /<p class="snippet">(.*)<\/p>/.exec(mainOf(bySnippet.body))![1]!
    expect(snippet).toContain('<mark>alert</mark>(')
    expect(snippet).toContain('&lt;')
    expect(snippet.replace(/<\/?mark>/g, '')).not.toMatch(/[<>]/)
  })

  it('the search box echoes a hostile query escaped', async () => {
    const response = await site.app.inject(`/search?q=${encodeURIComponent('<script>alert(3)</script>')}`)
    expect(response.body).not.toContain('<script>alert(3)')
    expect(mainOf(response.body)).toContain('value="&lt;script&gt;alert(3)&lt;/script&gt;"')
    expect(response.body).toContain('<title>Search: &lt;script&gt;alert(3)&lt;/script&gt; · Quiesce</title>')
  })

  it('the edit form shows the title and text escaped', async () => {
    const response = await site.app.inject({ url: '/docs/hostile/edit', headers: { cookie: ann.cookie } })
    expect(response.statusCode).toBe(200)
    expectOnlyOwnScripts(response.body)
    const main = mainOf(response.body)
    expect(main).toContain(`value="${escapedTitle}">`)
    expect(main).toContain('<textarea id="body" name="body" rows="18">&lt;script&gt;alert(1)&lt;/script&gt;\n\n[x](javascript:alert(1))\n\n&lt;img src=x onerror=alert(2)&gt;\n\n&lt;iframe src=&quot;https://evil.example/&quot;&gt;&lt;/iframe&gt;</textarea>')
  })
})
