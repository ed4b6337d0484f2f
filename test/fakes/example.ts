import { createHash } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * The small vendor the connector scaffold (src-agent/connectors/__example__) reads: contacts, and
 * meetings per team, each paged with an opaque `cursor` (`after:<seq>`: everything changed after
 * it, in change order) and `has_more`; a field list per kind; Bearer API key auth (401 otherwise), the key also
 * obtained by OAuth code + PKCE (/oauth/authorize, /oauth/token).
 */
export interface ExampleFake {
  url: string
  apiKey: string
  /** Every request path (with its query), in order. */
  readonly requests: string[]
  addContact(id: string, fields?: Partial<Contact>): void
  addMeeting(team: string, id: string, fields?: Partial<Meeting>): void
  /** The next sign-ins are refused (error=access_denied). */
  refuseSignIn(): void
  /** Teams the fake lists (each with its meetings). */
  setTeams(teams: string[]): void
  close(): Promise<void>
}

interface Contact {
  id: string
  email: string | null
  name: string | null
  updated_at: string
  seq: number
}

interface Meeting {
  id: string
  title: string
  contact_id: string | null
  started_at: string
  seq: number
}

export async function startExampleFake(
  options: { pageSize?: number; apiKey?: string } = {},
): Promise<ExampleFake> {
  const apiKey = options.apiKey ?? 'example-key-0123456789'
  const pageSize = options.pageSize ?? 3
  let seq = 0
  const contacts = new Map<string, Contact>()
  const meetings = new Map<string, Map<string, Meeting>>()
  let teams: string[] = []
  const requests: string[] = []

  const page = <T extends { seq: number }>(rows: Iterable<T>, cursor: string | null) => {
    const after = cursor ? Number(/^after:(\d+)$/.exec(cursor)?.[1] ?? Number.NaN) : 0
    if (!Number.isFinite(after)) return undefined
    const changed = [...rows].filter((r) => r.seq > after).sort((a, b) => a.seq - b.seq)
    const items = changed.slice(0, pageSize).map(({ seq: _seq, ...row }) => row)
    const last = changed.slice(0, pageSize).at(-1)?.seq ?? after
    return { items, next_cursor: `after:${last}`, has_more: changed.length > pageSize }
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    requests.push(url.pathname + url.search)
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    }
    if (url.pathname === '/oauth/authorize') {
      authorize(url, res)
      return
    }
    if (url.pathname === '/oauth/token' && req.method === 'POST') {
      let form = ''
      req.setEncoding('utf8').on('data', (chunk: string) => (form += chunk))
      req.on('end', () => token(new URLSearchParams(form), send))
      return
    }
    if (req.headers.authorization !== `Bearer ${apiKey}`) {
      send(401, { error: 'unauthorized' })
      return
    }
    const cursor = url.searchParams.get('cursor')
    let m: RegExpExecArray | null
    if (url.pathname === '/v1/teams') {
      send(200, { teams: teams.map((id) => ({ id })) })
    } else if (url.pathname === '/v1/contacts') {
      const p = page(contacts.values(), cursor)
      if (!p) send(400, { error: 'bad cursor' })
      else send(200, { contacts: p.items, next_cursor: p.next_cursor, has_more: p.has_more })
    } else if ((m = /^\/v1\/teams\/([^/]+)\/meetings$/.exec(url.pathname))) {
      const team = decodeURIComponent(m[1]!)
      if (!teams.includes(team)) {
        send(404, { error: 'no such team' })
        return
      }
      const p = page(meetings.get(team)?.values() ?? [], cursor)
      if (!p) send(400, { error: 'bad cursor' })
      else send(200, { meetings: p.items, next_cursor: p.next_cursor, has_more: p.has_more })
    } else if ((m = /^\/v1\/fields\/(contact|meeting)$/.exec(url.pathname))) {
      const keys =
        m[1] === 'contact'
          ? ['id', 'email', 'name', 'updated_at']
          : ['id', 'title', 'contact_id', 'started_at']
      send(200, {
        fields: [
          ...keys.map((key) => ({ key, label: key, type: 'string', custom: false })),
          { key: 'region_c', label: 'Region', type: 'string', custom: true },
        ],
      })
    } else {
      send(404, { error: 'not found' })
    }
  })
  // OAuth code + PKCE: the consent screen says yes at once (or no, after refuseSignIn).
  const codes = new Map<string, { challenge: string; redirectUri: string }>()
  let refuse = false
  const authorize = (url: URL, res: http.ServerResponse) => {
    const redirect = new URL(url.searchParams.get('redirect_uri') ?? '')
    redirect.searchParams.set('state', url.searchParams.get('state') ?? '')
    if (refuse) {
      redirect.searchParams.set('error', 'access_denied')
      redirect.searchParams.set('error_description', 'The admin said no')
    } else {
      const code = `code-${codes.size + 1}`
      codes.set(code, {
        challenge: url.searchParams.get('code_challenge') ?? '',
        redirectUri: url.searchParams.get('redirect_uri') ?? '',
      })
      redirect.searchParams.set('code', code)
    }
    res.writeHead(302, { location: redirect.toString() })
    res.end()
  }
  const token = (form: URLSearchParams, send: (status: number, body: unknown) => void) => {
    const grant = codes.get(form.get('code') ?? '')
    const verifier = form.get('code_verifier') ?? ''
    const challenge = createHash('sha256').update(verifier).digest('base64url')
    if (!grant || grant.challenge !== challenge || grant.redirectUri !== form.get('redirect_uri')) {
      send(400, { error: 'invalid_grant' })
      return
    }
    codes.delete(form.get('code') ?? '')
    send(200, { access_token: apiKey, token_type: 'bearer' })
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    requests,
    addContact: (id, fields = {}) => {
      const before = contacts.get(id)
      contacts.set(id, {
        id,
        email: `${id}@example.com`,
        name: id,
        updated_at: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
        ...before,
        ...fields,
        seq: ++seq,
      })
    },
    addMeeting: (team, id, fields = {}) => {
      const list = meetings.get(team) ?? new Map<string, Meeting>()
      meetings.set(team, list)
      list.set(id, {
        id,
        title: `Meeting ${id}`,
        contact_id: null,
        started_at: '2026-01-02T10:00:00.000Z',
        ...list.get(id),
        ...fields,
        seq: ++seq,
      })
    },
    refuseSignIn: () => {
      refuse = true
    },
    setTeams: (next) => {
      teams = [...next]
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
