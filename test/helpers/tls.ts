import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export interface TestCertificate {
  /** PEM key and certificate of 127.0.0.1 / localhost, signed by the test CA. */
  key: string
  cert: string
  /** The test CA's certificate file: NODE_EXTRA_CA_CERTS for the processes that must trust it. */
  caFile: string
}

let made: TestCertificate | undefined

/**
 * A private CA and a server certificate for loopback https fakes (vendors whose client refuses
 * plain http, as MSAL refuses an http authority). Made once per test process with openssl.
 */
export function testCertificate(): TestCertificate {
  if (made) return made
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gtm-tls-'))
  const file = (name: string) => path.join(dir, name)
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' })
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '3',
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.pem'),
    '-subj',
    '/CN=GTM Clarity test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign',
  )
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    file('server.key'),
    '-out',
    file('server.csr'),
    '-subj',
    '/CN=127.0.0.1',
  )
  writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  openssl(
    'x509',
    '-req',
    '-in',
    file('server.csr'),
    '-CA',
    file('ca.pem'),
    '-CAkey',
    file('ca.key'),
    '-CAcreateserial',
    '-days',
    '3',
    '-out',
    file('server.pem'),
    '-extfile',
    file('san.ext'),
  )
  made = {
    key: readFileSync(file('server.key'), 'utf8'),
    cert: readFileSync(file('server.pem'), 'utf8'),
    caFile: file('ca.pem'),
  }
  return made
}
