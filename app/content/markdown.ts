import MarkdownIt from 'markdown-it'

/**
 * Markdown to HTML with raw HTML switched off: `<script>` and friends come out as text, and
 * markdown-it's link validation drops `javascript:`, `vbscript:` and `data:` (except images).
 */
const markdown = new MarkdownIt({ html: false, linkify: true, typographer: true })

const defaultLinkOpen = markdown.renderer.rules.link_open ?? ((tokens, idx, options, _env, self) => self.renderToken(tokens, idx, options))
markdown.renderer.rules.link_open = function linkOpen (tokens, idx, options, env, self) {
  // Documents are written by members; links they add should not pass on ranking or the opener.
  tokens[idx]!.attrSet('rel', 'nofollow noopener')
  return defaultLinkOpen(tokens, idx, options, env, self)
}

export function renderMarkdown (source: string): string {
  return markdown.render(source)
}

const ENTITIES: Record<string, string> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'" }

/** The words of a Markdown text without its markup, for the catalog and its snippets. */
export function markdownToText (source: string): string {
  return markdown.render(source)
    .replace(/<[^>]*>/g, ' ')
    .replace(/&(amp|lt|gt|quot|#39);/g, (entity) => ENTITIES[entity]!)
    .replace(/\s+/g, ' ')
    .trim()
}

/** Characters of Markdown (and as much HTML) kept by {@link renderCached}. */
const CACHE_CHARACTERS = 8_000_000
const rendered = new Map<string, string>()
let cachedCharacters = 0

/**
 * Markdown to HTML, remembering the most recently rendered texts: rendering is the largest part
 * of serving a document page, and pages are read far more often than they change. Keyed by the
 * text itself, so an answer is never stale, whatever database or version it came from.
 */
export function renderCached (source: string): string {
  let html = rendered.get(source)
  if (html !== undefined) {
    rendered.delete(source)
  } else {
    html = renderMarkdown(source)
    cachedCharacters += source.length + html.length
    for (const [oldest, oldestHtml] of rendered) {
      if (cachedCharacters <= CACHE_CHARACTERS) break
      rendered.delete(oldest)
      cachedCharacters -= oldest.length + oldestHtml.length
    }
  }
  rendered.set(source, html)
  return html
}
