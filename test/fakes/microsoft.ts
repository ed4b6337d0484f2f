/**
 * A loopback fake of Microsoft's identity platform and the bit of Graph a connection check needs,
 * over https (MSAL refuses an http authority), as ../shared/vendor-apis.md §4 and Microsoft's docs
 * describe them:
 *
 *   GET  /{tenant}/v2.0/adminconsent?client_id&scope&redirect_uri&state
 *        → 302 to redirect_uri with admin_consent=True&tenant=<id>&state (or error=…&state)
 *   GET  /{tenant}/v2.0/.well-known/openid-configuration   (MSAL's endpoint metadata)
 *   POST /{tenant}/oauth2/v2.0/token   grant_type=client_credentials (app-only)
 *   GET  /v1.0/organization            Graph, with the app-only token
 *
 * An app-only token carries the application permissions an admin consented to; before consent
 * Graph answers 403 Authorization_RequestDenied, as it does for an app with no roles.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { testCertificate } from '../helpers/tls.js'

export interface MicrosoftFakeOptions {
  /** Reply URLs registered on the app; the consent redirect must be one of them, exactly. */
  replyUrls?: string[]
}

export interface MicrosoftFakeRequest {
  method: string
  path: string
  query: Record<string, string>
  /** For token requests: the form's grant_type and scope. */
  grantType?: string
  scope?: string
  status: number
}

export interface MicrosoftFake {
  /** https://127.0.0.1:<port>: the authority host and the Graph base alike. */
  readonly url: string
  /** The customer's directory (tenant) id, which the consent callback reports. */
  readonly tenantId: string
  readonly clientId: string
  readonly clientSecret: string
  readonly requests: MicrosoftFakeRequest[]
  /** Whether an admin has granted consent. */
  readonly consented: boolean
  /** The next consent is declined by the admin (error=access_denied). */
  declineNextConsent(): void
  /** An admin granted consent some other way (the Entra portal). */
  grantConsent(): void
  /** A user of the directory; `mailbox: false` answers MailboxNotEnabledForRESTAPI. */
  addUser(upn: string, options?: { mailbox?: boolean }): void
  /** Adds or changes a calendar event of a mailbox (Graph's event resource; `body` included). */
  putEvent(upn: string, event: Record<string, unknown> & { id: string }): void
  removeEvent(upn: string, id: string): void
  putMessage(
    upn: string,
    folder: 'inbox' | 'sentitems',
    message: Record<string, unknown> & { id: string },
  ): void
  /** The next `count` Graph requests answer 429 with `Retry-After: 1`. */
  throttleGraph(count: number): void
  /** Delta tokens of this mailbox answer 410 Gone (syncStateNotFound) from now on. */
  expireDeltaTokens(upn: string): void
  /** Graph requests (path and query), in order. */
  readonly graphRequests: Array<{ path: string; query: Record<string, string>; status: number }>
  close(): Promise<void>
}

export async function startMicrosoftFake(
  options: MicrosoftFakeOptions = {},
): Promise<MicrosoftFake> {
  const tenantId = randomUUID()
  const clientId = randomUUID()
  const clientSecret = `Xy8Q~${randomBytes(18).toString('base64url')}`
  const requests: MicrosoftFakeRequest[] = []
  const tokens = new Map<string, { roles: boolean }>()
  let consented = false
  let declineNext = false
  const { key, cert } = testCertificate()
  let origin = ''

  // Graph: users, and per mailbox its events and its messages per folder, each change numbered.
  const users = new Map<string, { mailbox: boolean }>()
  type Item = { seq: number; removed: boolean; body: Record<string, unknown> }
  const events = new Map<string, Map<string, Item>>()
  const messages = new Map<string, Map<string, Item>>()
  const expired = new Set<string>()
  const graphRequests: MicrosoftFake['graphRequests'] = []
  let graphThrottle = 0
  let seq = 0
  const put = (
    store: Map<string, Map<string, Item>>,
    key: string,
    id: string,
    body: Record<string, unknown>,
    removed = false,
  ) => {
    const items = store.get(key) ?? new Map<string, Item>()
    store.set(key, items)
    items.set(id, { seq: ++seq, removed, body })
  }

  const server = https.createServer({ key, cert }, (req, res) => {
    const url = new URL(req.url ?? '/', origin)
    const query = Object.fromEntries(url.searchParams)
    const record: MicrosoftFakeRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query,
      status: 0,
    }
    requests.push(record)
    const send = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      record.status = status
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers })
      res.end(typeof body === 'string' ? body : JSON.stringify(body))
    }
    const tokenError = (status: number, error: string, description: string): void =>
      send(status, {
        error,
        error_description: `${description}\r\nTrace ID: ${randomUUID()}\r\nTimestamp: ${new Date().toISOString()}`,
        error_codes: [Number(/AADSTS(\d+)/.exec(description)?.[1] ?? 0)],
        timestamp: new Date().toISOString(),
      })
    const parts = url.pathname.split('/').filter(Boolean)
    const tenantInPath = parts[0] ?? ''
    const knownTenant = [tenantId, 'organizations', 'common'].includes(tenantInPath)

    if (req.method === 'GET' && parts[1] === 'v2.0' && parts[2] === 'adminconsent') {
      if (!knownTenant)
        return send(400, 'AADSTS90002: Tenant not found.', { 'content-type': 'text/plain' })
      if (query['client_id'] !== clientId) {
        return send(
          400,
          `AADSTS700016: Application with identifier '${query['client_id']}' was not found in the directory.`,
          { 'content-type': 'text/plain' },
        )
      }
      const redirectUri = query['redirect_uri'] ?? ''
      if (options.replyUrls && !options.replyUrls.includes(redirectUri)) {
        return send(
          400,
          `AADSTS50011: The redirect URI '${redirectUri}' specified in the request does not match the redirect URIs configured for the application '${clientId}'.`,
          { 'content-type': 'text/plain' },
        )
      }
      const back = new URL(redirectUri)
      if (declineNext) {
        declineNext = false
        back.searchParams.set('error', 'access_denied')
        back.searchParams.set('error_subcode', 'cancel')
        back.searchParams.set(
          'error_description',
          'AADSTS65004: User declined to consent to access the app.',
        )
      } else {
        consented = true
        back.searchParams.set('admin_consent', 'True')
        back.searchParams.set('tenant', tenantId)
        back.searchParams.set('scope', query['scope'] ?? '')
      }
      if (query['state'] !== undefined) back.searchParams.set('state', query['state'])
      record.status = 302
      res.writeHead(302, { location: back.toString() })
      return res.end()
    }

    if (req.method === 'GET' && url.pathname.endsWith('/v2.0/.well-known/openid-configuration')) {
      if (!knownTenant)
        return send(400, {
          error: 'invalid_tenant',
          error_description: 'AADSTS90002: Tenant not found.',
        })
      const base = `${origin}/${tenantInPath}`
      return send(200, {
        token_endpoint: `${base}/oauth2/v2.0/token`,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        jwks_uri: `${origin}/${tenantInPath}/discovery/v2.0/keys`,
        issuer: `${origin}/${tenantId}/v2.0`,
        token_endpoint_auth_methods_supported: [
          'client_secret_post',
          'private_key_jwt',
          'client_secret_basic',
        ],
        response_modes_supported: ['query', 'fragment', 'form_post'],
        subject_types_supported: ['pairwise'],
        id_token_signing_alg_values_supported: ['RS256'],
        scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
        tenant_region_scope: 'EU',
      })
    }

    if (req.method === 'POST' && parts[1] === 'oauth2' && parts[3] === 'token') {
      let body = ''
      req.setEncoding('utf8')
      req.on('data', (chunk: string) => (body += chunk))
      req.on('end', () => {
        const form = new URLSearchParams(body)
        record.grantType = form.get('grant_type') ?? ''
        record.scope = form.get('scope') ?? ''
        if (tenantInPath !== tenantId)
          return tokenError(400, 'invalid_request', 'AADSTS90002: Tenant not found.')
        if (record.grantType !== 'client_credentials') {
          return tokenError(
            400,
            'unsupported_grant_type',
            'AADSTS70003: The app requested an unsupported grant type.',
          )
        }
        if (form.get('client_id') !== clientId) {
          return tokenError(
            400,
            'unauthorized_client',
            `AADSTS700016: Application with identifier '${form.get('client_id')}' was not found in the directory.`,
          )
        }
        if (form.get('client_secret') !== clientSecret) {
          return tokenError(
            401,
            'invalid_client',
            `AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
          )
        }
        if (record.scope !== `${graphResource()}/.default`) {
          return tokenError(
            400,
            'invalid_scope',
            `AADSTS1002012: The provided value for scope ${record.scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
          )
        }
        const accessToken = `eyJ0eXAiOiJKV1Qi.${randomBytes(24).toString('base64url')}`
        tokens.set(accessToken, { roles: consented })
        return send(200, {
          token_type: 'Bearer',
          expires_in: 3599,
          ext_expires_in: 3599,
          access_token: accessToken,
        })
      })
      return
    }

    if (req.method === 'GET' && url.pathname.startsWith('/v1.0/users')) {
      const graphRecord = { path: url.pathname, query, status: 0 }
      graphRequests.push(graphRecord)
      if (graphThrottle > 0) {
        graphThrottle -= 1
        graphRecord.status = 429
        return send(
          429,
          { error: { code: 'TooManyRequests', message: 'Please retry again later.' } },
          { 'retry-after': '1' },
        )
      }
      const reply = (status: number, body: unknown) => {
        graphRecord.status = status
        send(status, body)
      }
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]
      const grant = token ? tokens.get(token) : undefined
      if (!grant)
        return reply(401, {
          error: { code: 'InvalidAuthenticationToken', message: 'Access token is empty.' },
        })
      if (!grant.roles) {
        return reply(403, {
          error: {
            code: 'Authorization_RequestDenied',
            message: 'Insufficient privileges to complete the operation.',
          },
        })
      }
      const pageSize = Number(
        /odata\.maxpagesize=(\d+)/.exec(String(req.headers.prefer ?? ''))?.[1] ?? 10,
      )
      const parts = url.pathname.split('/').filter(Boolean) // v1.0, users, {upn}, ...
      if (parts.length === 2) {
        return reply(200, {
          value: [...users.keys()].map((upn) => ({
            id: `id-${upn}`,
            userPrincipalName: upn,
            mail: upn,
          })),
        })
      }
      const upn = decodeURIComponent(parts[2] ?? '').toLowerCase()
      const user = users.get(upn)
      if (!user)
        return reply(404, { error: { code: 'ResourceNotFound', message: `User not found` } })
      if (!user.mailbox) {
        return reply(404, {
          error: {
            code: 'MailboxNotEnabledForRESTAPI',
            message: 'The mailbox is either inactive, soft-deleted, or is hosted on-premise.',
          },
        })
      }
      let store: Map<string, Item> | undefined
      let scope: string
      if (parts[3] === 'calendarView' && parts[4] === 'delta') {
        store = events.get(upn)
        scope = `${upn}|calendar`
      } else if (parts[3] === 'mailFolders' && parts[5] === 'messages' && parts[6] === 'delta') {
        scope = `${upn}|${parts[4]}`
        store = messages.get(scope)
      } else {
        return reply(404, { error: { code: 'NotFound', message: 'No fake for this Graph path' } })
      }
      // $skiptoken continues a walk; $deltatoken starts the next one from where the last ended.
      const state = (() => {
        const raw = query['$skiptoken'] ?? query['$deltatoken']
        return raw
          ? (JSON.parse(Buffer.from(raw, 'base64url').toString()) as {
              after: number
              upTo: number
              offset: number
              select?: string
            })
          : undefined
      })()
      if (query['$deltatoken'] && expired.has(upn)) {
        return reply(410, {
          error: { code: 'syncStateNotFound', message: 'The sync state generation is not found.' },
        })
      }
      const after = query['$skiptoken'] ? state!.after : query['$deltatoken'] ? state!.upTo : 0
      const upTo = query['$skiptoken'] ? state!.upTo : seq
      const offset = query['$skiptoken'] ? state!.offset : 0
      const select = query['$select'] ?? state?.select
      const changed = [...(store ?? new Map<string, Item>()).entries()]
        .filter(([, item]) => item.seq > after && item.seq <= upTo)
        .filter(([, item]) => after > 0 || !item.removed)
        .sort((a, b) => a[1].seq - b[1].seq)
      const slice = changed.slice(offset, offset + pageSize)
      const value = slice.map(([id, item]) => {
        if (item.removed) return { id, '@removed': { reason: 'deleted' } }
        // Message delta honours $select; event delta returns bodies whatever it says.
        if (select && scope.endsWith('|calendar') === false) {
          const keep = new Set(['id', ...select.split(',')])
          return Object.fromEntries(Object.entries(item.body).filter(([k]) => keep.has(k)))
        }
        return item.body
      })
      const base = `${origin}${url.pathname}`
      const token64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
      const more = offset + slice.length < changed.length
      return reply(200, {
        '@odata.context': `${origin}/v1.0/$metadata`,
        value,
        ...(more
          ? {
              '@odata.nextLink': `${base}?$skiptoken=${token64({ after, upTo, offset: offset + slice.length, select })}`,
            }
          : {
              '@odata.deltaLink': `${base}?$deltatoken=${token64({ after: 0, upTo, offset: 0, select })}`,
            }),
      })
    }

    if (req.method === 'GET' && url.pathname === '/v1.0/organization') {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]
      const grant = token ? tokens.get(token) : undefined
      if (!grant) {
        return send(
          401,
          { error: { code: 'InvalidAuthenticationToken', message: 'Access token is empty.' } },
          { 'www-authenticate': 'Bearer realm=""' },
        )
      }
      if (!grant.roles) {
        return send(403, {
          error: {
            code: 'Authorization_RequestDenied',
            message: 'Insufficient privileges to complete the operation.',
          },
        })
      }
      return send(200, {
        '@odata.context': `${origin}/v1.0/$metadata#organization`,
        value: [{ id: tenantId, displayName: 'Contoso' }],
      })
    }

    return send(404, {
      error: { code: 'NotFound', message: `No fake for ${req.method} ${url.pathname}` },
    })
  })
  // The Graph resource the fake stands for: MSAL's scope is `<graph origin>/.default`.
  const graphResource = (): string => origin

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url: origin,
    tenantId,
    clientId,
    clientSecret,
    requests,
    get consented() {
      return consented
    },
    declineNextConsent: () => {
      declineNext = true
    },
    graphRequests,
    grantConsent: () => {
      consented = true
    },
    addUser: (upn, opts = {}) => users.set(upn.toLowerCase(), { mailbox: opts.mailbox ?? true }),
    putEvent: (upn, event) => put(events, upn.toLowerCase(), event.id, event),
    removeEvent: (upn, id) => put(events, upn.toLowerCase(), id, {}, true),
    putMessage: (upn, folder, message) =>
      put(messages, `${upn.toLowerCase()}|${folder}`, message.id, message),
    throttleGraph: (count) => {
      graphThrottle = count
    },
    expireDeltaTokens: (upn) => expired.add(upn.toLowerCase()),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
