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
const BLOCK_END = /<\/(p|h[1-6]|li|blockquote|pre|th|td|dt|dd)>/g
/** Markup inside a line of text: dropped without a space, so `foo*bar*` stays one word. */
const INLINE_TAG = /<\/?(a|em|strong|code|s|del|ins|mark|sub|sup|span)(\s[^>]*)?>/g
/** Separates the blocks of a text (a heading, a paragraph, a list item) in the catalog and its snippets. */
const BLOCK_SEPARATOR = ' · '

/**
 * The words of a Markdown text without its markup, for the catalog and its snippets. Blocks
 * are kept apart by {@link BLOCK_SEPARATOR}, so a heading does not run into the text after it.
 */
export function markdownToText (source: string): string {
  return markdown.render(source)
    .replace(BLOCK_END, '\u0000')
    .replace(INLINE_TAG, '')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&(amp|lt|gt|quot|#39);/g, (entity) => ENTITIES[entity]!)
    .split('\u0000')
    .map((block) => block.replace(/\s+/g, ' ').trim())
    .filter((block) => block !== '')
    .join(BLOCK_SEPARATOR)
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
