import { defineConfig, devices } from '@playwright/test'
import { E2E_PORT } from './e2e/fixtures.js'

// Debian's Chromium (below), never a downloaded one: nothing started from this config may fetch a browser.
process.env.PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD = '1'

const CI = process.env.CI !== undefined && process.env.CI !== ''

export default defineConfig({
  testDir: './e2e',
  fullyParallel: false,
  workers: 1,
  retries: CI ? 1 : 0,
  forbidOnly: CI,
  reporter: [['list']],
  outputDir: 'test-results',
  use: {
    baseURL: `http://127.0.0.1:${E2E_PORT}`,
    trace: 'retain-on-failure',
  },
  projects: [
    {
      name: 'debian-chromium',
      use: {
        ...devices['Desktop Chrome'],
        launchOptions: {
          executablePath: '/usr/bin/chromium',
          args: [
            '--no-sandbox',
            '--disable-gpu',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
            '--no-first-run',
            '--disable-quic',
          ],
        },
      },
    },
  ],
  webServer: {
    // Runs the built CLI (dist/), so `npm run build` first; `npm run test:e2e` does.
    command: 'node --import tsx e2e/serve.ts',
    url: `http://127.0.0.1:${E2E_PORT}/`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'pipe',
    // Longer than the server's own 10 s close delay, so it always closes (and cleans up) itself.
    gracefulShutdown: { signal: 'SIGTERM', timeout: 15_000 },
  },
})
