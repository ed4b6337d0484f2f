import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { testCertificate } from './tls.js'

export interface Page {
  status: number
  /** Where a redirect pointed (absent when the page was not a redirect). */
  location?: string
  body: string
}

/**
 * One GET on a fresh connection (no pooling, so nothing is left open on the server). https URLs
 * are the tests' own fakes: their certificate is trusted through the tests' CA (tls.ts).
 */
export function get(url: string): Promise<Page> {
  const secure = url.startsWith('https:')
  return new Promise((resolve, reject) => {
    const onResponse = (res: http.IncomingMessage): void => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (body += chunk))
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          ...(res.headers.location ? { location: res.headers.location } : {}),
          body,
        }),
      )
      res.on('error', reject)
    }
    const req = secure
      ? https.get(url, { agent: false, ca: readFileSync(testCertificate().caFile) }, onResponse)
      : http.get(url, { agent: false }, onResponse)
    req.on('error', reject)
  })
}

/**
 * What a browser does with a sign-in URL, minus the person: load it, follow the vendor's
 * redirects (to the loopback callback among them), and return the last page.
 */
export async function browse(url: string, maxRedirects = 5): Promise<Page & { visited: string[] }> {
  const visited = [url]
  let page = await get(url)
  while (page.location && visited.length <= maxRedirects) {
    const next = new URL(page.location, visited.at(-1)).toString()
    visited.push(next)
    page = await get(next)
  }
  return { ...page, visited }
}
