import { describe, expect, it } from 'vitest'
import { renderCached, renderMarkdown } from '../app/content/markdown.js'
import { computeSecurityHeaders } from '../app/web/security-headers.js'

describe('renderCached', () => {
  it('answers exactly what renderMarkdown does, for the same text and for a changed one', () => {
    const text = '# Title\n\nSome *text* and <script>alert(1)</script>'
    expect(renderCached(text)).toBe(renderMarkdown(text))
    expect(renderCached(text)).toBe(renderMarkdown(text))
    expect(renderCached(text + ' changed')).toBe(renderMarkdown(text + ' changed'))
  })

  it('keeps answering correctly when it evicts (texts larger than the cache)', () => {
    const big = (n: number) => `${'word '.repeat(900_000)}${n}`
    for (let n = 0; n < 3; n++) expect(renderCached(big(n)).endsWith(`${n}</p>\n`)).toBe(true)
    expect(renderCached(big(0)).endsWith('0</p>\n')).toBe(true)
  })
})

describe('computeSecurityHeaders', () => {
  it('collects helmet\'s headers once, with the CSP as configured', () => {
    const headers = computeSecurityHeaders({ contentSecurityPolicy: { directives: { defaultSrc: ["'self'"], scriptSrc: ["'self'"], upgradeInsecureRequests: null } } })
    expect(headers['content-security-policy']).toContain("script-src 'self'")
    expect(headers['content-security-policy']).not.toContain('upgrade-insecure-requests')
    expect(headers['x-content-type-options']).toBe('nosniff')
    expect(headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains')
    expect(headers['x-powered-by']).toBeUndefined()
  })
})
