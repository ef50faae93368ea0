import neostandard from 'neostandard'

export default neostandard({
  ts: true,
  ignores: ['dist', 'data', 'test-results', 'playwright-report', 'node_modules'],
})
