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
