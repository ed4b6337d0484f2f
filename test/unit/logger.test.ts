import { afterEach, describe, expect, it, vi } from 'vitest'
import { ConfigError } from '../../shared/errors.js'
import { createLogger, type Logger } from '../../src-agent/logging/logger.js'
import { REDACTED, redact, registerSecret, scrubString } from '../../shared/redact.js'

/** A logger writing to memory, plus the lines it wrote. */
function memoryLogger(level: string): { logger: Logger; lines: string[]; text: () => string } {
  const lines: string[] = []
  const logger = createLogger({ level, destination: { write: (line: string) => lines.push(line) } })
  return { logger, lines, text: () => lines.join('') }
}

/** Every canary is a substring of this prefix, so one search finds any leak. */
const CANARY = 'CANARY'

afterEach(() => {
  vi.unstubAllEnvs()
})

describe('createLogger redaction', () => {
  for (const level of ['debug', 'trace']) {
    it(`redacts secrets everywhere at level ${level}`, () => {
      const { logger, lines, text } = memoryLogger(level)
      registerSecret('CANARY_registered_7f3a9c')

      logger.trace({ headers: { authorization: 'Bearer CANARY_trace_header' } }, 'trace request')
      logger.debug(
        { headers: { Authorization: 'Bearer CANARY_auth_header', accept: 'application/json' } },
        'debug request',
      )
      logger.debug(
        {
          tenantId: 'tenant-visible',
          credentials: { clientId: 'CANARY_client', clientSecret: 'CANARY_client_secret' },
          refreshToken: 'CANARY_refresh',
          nested: [{ deeper: { api_key: 'CANARY_api_key', page: 3 } }],
        },
        'debug credentials',
      )
      logger.info(
        'calling https://api.example.com/v1?access_token=CANARY_qs&limit=50 with Bearer CANARY_msg_bearer',
      )
      logger.error(
        new Error('login failed for key CANARY_registered_7f3a9c at stage visible-stage'),
      )
      logger.error(
        { err: new Error('token CANARY_registered_7f3a9c rejected'), attempt: 2 },
        'vendor said no',
      )
      logger.warn({ note: 'value is CANARY_registered_7f3a9c' }, 'registered in a plain field')

      const child = logger.child({ connector: 'salesforce', apiKey: 'CANARY_child_binding' })
      child.info({ recordCount: 12 }, 'child line')
      child.child({ sessionToken: 'CANARY_grandchild' }).debug('grandchild line')
      child.setBindings({ password: 'CANARY_set_bindings' })
      child.info('after setBindings')

      logger.info(
        'format %s and %o and %j',
        'Bearer CANARY_fmt_string',
        { password: 'CANARY_fmt_object', user: 'visible-user' },
        { nested: { secret: 'CANARY_fmt_json' } },
      )
      logger.debug('error as arg: %s', new Error('failed with CANARY_registered_7f3a9c'))

      const output = text()
      expect(output).not.toContain(CANARY)
      // Not everything was wiped: the non-secret parts survive.
      for (const visible of [
        'application/json',
        'tenant-visible',
        'limit=50',
        'https://api.example.com/v1',
        'visible-stage',
        'vendor said no',
        '"attempt":2',
        '"connector":"salesforce"',
        '"recordCount":12',
        'grandchild line',
        'visible-user',
        '"page":3',
        'Error: failed with [REDACTED]',
      ]) {
        expect(output).toContain(visible)
      }
      expect(output).toContain(`Bearer ${REDACTED}`)
      expect(output).toContain(`access_token=${REDACTED}`)
      if (level === 'trace') expect(output).toContain('trace request')
      else expect(output).not.toContain('trace request')
      for (const line of lines) expect(() => JSON.parse(line) as unknown).not.toThrow()
    })
  }

  it('keeps the error message, with the secret removed, as msg and err.message', () => {
    const { logger, lines } = memoryLogger('info')
    registerSecret('CANARY_err_msg_1234')
    logger.error(new Error('bad key CANARY_err_msg_1234 for tenant t1'))
    const line = JSON.parse(lines[0] ?? '{}') as { msg?: string; err?: { message?: string } }
    expect(line.msg).toBe(`bad key ${REDACTED} for tenant t1`)
    expect(line.err?.message).toBe(`bad key ${REDACTED} for tenant t1`)
  })

  it('scrubs a registered secret that needs JSON escaping and keeps the line valid JSON', () => {
    const { logger, lines } = memoryLogger('info')
    const secret = 'CANARY"quote\\slash'
    registerSecret(secret)
    logger.info({ note: `x ${secret} y` }, `msg ${secret}`)
    expect(lines.join('')).not.toContain(CANARY)
    const line = JSON.parse(lines[0] ?? '{}') as { note?: string; msg?: string }
    expect(line.note).toBe(`x ${REDACTED} y`)
    expect(line.msg).toBe(`msg ${REDACTED}`)
  })

  it('scrubs what a custom child serializer lets through (streamWrite)', () => {
    const { logger, text } = memoryLogger('info')
    const child = logger.child(
      {},
      { serializers: { req: () => ({ auth: 'Bearer CANARY_serializer', path: '/visible' }) } },
    )
    child.info({ req: { url: '/' } }, 'served')
    expect(text()).not.toContain(CANARY)
    expect(text()).toContain('/visible')
  })

  it('scrubs a child msgPrefix', () => {
    const { logger, text } = memoryLogger('info')
    logger.child({}, { msgPrefix: '[Bearer CANARY_prefix] ' }).info('prefixed')
    expect(text()).not.toContain(CANARY)
    expect(text()).toContain('prefixed')
  })

  it('does not log below the level', () => {
    const { logger, lines } = memoryLogger('warn')
    logger.info('quiet')
    logger.warn('loud')
    expect(lines).toHaveLength(1)
  })
})

describe('createLogger level', () => {
  it('rejects an unknown LOG_LEVEL, naming the variable and the allowed values', () => {
    vi.stubEnv('LOG_LEVEL', 'verbose')
    const attempt = () => createLogger({ destination: { write: () => undefined } })
    expect(attempt).toThrow(ConfigError)
    expect(attempt).toThrow(/LOG_LEVEL is set to "verbose"/)
    expect(attempt).toThrow(/fatal, error, warn, info, debug, trace, silent/)
  })

  it('rejects an unknown explicit level, naming LOG_LEVEL', () => {
    expect(() => createLogger({ level: 'loud', destination: { write: () => undefined } })).toThrow(
      /LOG_LEVEL/,
    )
  })

  it('defaults to info and accepts LOG_LEVEL in any case', () => {
    vi.stubEnv('LOG_LEVEL', '')
    expect(createLogger({ destination: { write: () => undefined } }).level).toBe('info')
    vi.stubEnv('LOG_LEVEL', 'DEBUG')
    expect(createLogger({ destination: { write: () => undefined } }).level).toBe('debug')
  })
})

describe('redact', () => {
  it('replaces sensitive keys at any depth, case-insensitively, without touching the input', () => {
    const input = {
      Authorization: 'Basic dXNlcjpwYXNz',
      'Set-Cookie': ['a=1'],
      'x-api-key': 'k',
      PASSWD: 'p',
      private_key: { pem: 'x' },
      signature: 'sig',
      list: [{ access_token: 'a' }, 'plain'],
      count: 4,
      missingToken: null,
    }
    expect(redact(input)).toEqual({
      Authorization: REDACTED,
      'Set-Cookie': REDACTED,
      'x-api-key': REDACTED,
      PASSWD: REDACTED,
      private_key: REDACTED,
      signature: REDACTED,
      list: [{ access_token: REDACTED }, 'plain'],
      count: 4,
      missingToken: null,
    })
    expect(input.Authorization).toBe('Basic dXNlcjpwYXNz')
  })

  it('survives cycles and turns errors into name, message and code', () => {
    const cyclic: Record<string, unknown> = { name: 'loop' }
    cyclic.self = cyclic
    const err = Object.assign(new Error('denied: password=hunter22'), { code: 'E_AUTH' })
    expect(redact({ cyclic, err })).toEqual({
      cyclic: { name: 'loop', self: '[Circular]' },
      err: { name: 'Error', message: `denied: password=${REDACTED}`, code: 'E_AUTH' },
    })
    // The same object twice is not a cycle.
    const shared = { a: 1 }
    expect(redact([shared, shared])).toEqual([{ a: 1 }, { a: 1 }])
  })

  it('copies a __proto__ key as data', () => {
    const input = JSON.parse('{"__proto__": {"polluted": true}}') as object
    const copy = redact(input) as Record<string, unknown>
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype)
    expect(Object.keys(copy)).toEqual(['__proto__'])
  })
})

describe('scrubString', () => {
  it('removes bearer and basic credentials but keeps prose', () => {
    expect(scrubString('Authorization: Bearer eyJhbGciOi.x-y_z')).toBe(
      `Authorization: Bearer ${REDACTED}`,
    )
    expect(scrubString('Basic dXNlcjpwYXNzd29yZA==')).toBe(`Basic ${REDACTED}`)
    expect(scrubString('Basic authentication failed')).toBe('Basic authentication failed')
  })

  it('removes secret query parameters, JSON members and URL passwords', () => {
    expect(scrubString('/cb?code=abc123&state=ok&client_secret=s3cr3t')).toBe(
      `/cb?code=${REDACTED}&state=ok&client_secret=${REDACTED}`,
    )
    expect(scrubString('refresh_token=r1 password=p2 api-key=k3 error_code=42')).toBe(
      `refresh_token=${REDACTED} password=${REDACTED} api-key=${REDACTED} error_code=42`,
    )
    expect(scrubString('body {"refresh_token": "r\\"1", "scope": "api"}')).toBe(
      `body {"refresh_token": "${REDACTED}", "scope": "api"}`,
    )
    expect(scrubString('postgres://app:pa55word@db:5432/gtm')).toBe(
      `postgres://app:${REDACTED}@db:5432/gtm`,
    )
  })

  it('ignores registered secrets shorter than 6 characters', () => {
    registerSecret('short')
    expect(scrubString('a short word')).toBe('a short word')
    registerSecret('longer-secret-value')
    expect(scrubString('is longer-secret-value here')).toBe(`is ${REDACTED} here`)
    registerSecret('pass phrase&more')
    expect(scrubString('?p=pass%20phrase%26more&x=1')).toBe(`?p=${REDACTED}&x=1`)
  })
})
