import { defineConfig } from 'vitest/config'
import base from '../../vitest.config.js'

/**
 * The project's own test configuration (global setup included), run on one canary fixture named
 * by CANARY_FIXTURE instead of the suite, with only the console reporter.
 */
const fixture = process.env.CANARY_FIXTURE ?? 'passing'

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: [`test/canary/fixtures/${fixture}.fixture.ts`],
    reporters: ['default'],
  },
})
