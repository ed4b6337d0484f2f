import { randomBytes } from 'node:crypto'
import { asc, eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DbHandle } from '../../db/client.js'
import { auditLog, connectors, fieldMappings } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { ConnectorRegistry } from '../../src-agent/connectors/registry.js'
import { createLogger } from '../../src-agent/logging/logger.js'
import { keyringFromHex, type Keyring } from '../../src-agent/secrets/crypto.js'
import { connect, disconnect, health } from '../../src-agent/services/connections.js'
import { rotateKeys } from '../../src-agent/services/keys.js'
import { getMappings, resetMappings, setMappings } from '../../src-agent/services/mappings.js'
import { listTenants } from '../../src-agent/pipeline/tenants.js'
import { createTenant } from '../../src-agent/services/tenants.js'
import type { AppError } from '../../shared/errors.js'
import { startPagerFake, type PagerFake } from '../fakes/pager.js'
import { agentDb, uniqueTenantId } from '../helpers/db.js'
import { testConnector } from '../helpers/test-connector.js'

const userId = 'test:services'
const log = createLogger({ level: 'silent' })
const hexKey = (): string => randomBytes(32).toString('hex')

/** The error a promise rejects with (fails the test if it resolves). */
async function failure(promise: Promise<unknown>): Promise<AppError> {
  const outcome = await promise.then(
    () => undefined,
    (err: unknown) => err as AppError,
  )
  expect(outcome, 'expected a failure').toBeDefined()
  return outcome!
}

describe('services', () => {
  let h: DbHandle
  let fake: PagerFake
  let keyring: Keyring
  let registry: ConnectorRegistry
  // A second connector type, so one tenant can hold two connections.
  const twin = { ...testConnector, id: 'test-pages-two', name: 'Test pages two' }

  const deps = () => ({ db: h.db, registry, keyring, log })
  const goodConfig = () => ({ baseUrl: fake.url, apiKey: fake.apiKey })

  async function newTenant(): Promise<string> {
    const id = uniqueTenantId('svc')
    await createTenant(h.db, { id, name: `Tenant ${id}`, userId })
    return id
  }

  async function connected(type = 'test-pages', ring = keyring): Promise<string> {
    const tenantId = await newTenant()
    await connect(
      { ...deps(), keyring: ring },
      { tenantId, connectorType: type, configJson: goodConfig(), userId },
    )
    return tenantId
  }

  function audits(tenantId: string) {
    return withTenant(h.db, tenantId, (tx) =>
      tx
        .select()
        .from(auditLog)
        .where(eq(auditLog.tenantId, tenantId))
        .orderBy(asc(auditLog.createdAt)),
    )
  }

  function connection(tenantId: string, type = 'test-pages') {
    return withTenant(h.db, tenantId, async (tx) => {
      const [row] = await tx.select().from(connectors).where(eq(connectors.type, type))
      return row
    })
  }

  beforeAll(async () => {
    h = agentDb()
    fake = await startPagerFake({
      apiKey: `svc-secret-${randomBytes(8).toString('hex')}`,
      people: 3,
    })
    keyring = keyringFromHex(hexKey())
    registry = new ConnectorRegistry()
    registry.register(testConnector)
    registry.register(twin)
  })
  afterAll(async () => {
    await fake.close()
    await h.close()
  })

  describe('tenants', () => {
    it('creates a tenant, lists it, and audits the creation', async () => {
      const id = uniqueTenantId('svc')
      const created = await createTenant(h.db, { id, name: ' Acme Corp ', userId })
      expect(created).toMatchObject({ id, name: 'Acme Corp', slug: id })

      const listed = await listTenants(h.db)
      expect(listed.find((t) => t.id === id)).toMatchObject({ name: 'Acme Corp', slug: id })
      expect(listed.map((t) => t.id)).toEqual([...listed.map((t) => t.id)].sort())

      const [entry] = await audits(id)
      expect(entry).toMatchObject({
        action: 'tenant.create',
        resource: 'tenant',
        resourceId: id,
        userId,
      })
      expect(entry?.changes).toEqual({ after: { id, name: 'Acme Corp', slug: id } })
    })

    it('refuses a duplicate id, a taken slug and a malformed id', async () => {
      const id = await newTenant()
      const dup = await failure(createTenant(h.db, { id, name: 'Again', userId }))
      expect(dup.code).toBe('tenant_exists')
      expect(dup.userMessage).toBe(`Tenant "${id}" already exists.`)

      const slugTaken = await failure(
        createTenant(h.db, { id: uniqueTenantId('svc'), name: 'X', slug: id, userId }),
      )
      expect(slugTaken.code).toBe('tenant_exists')
      expect(slugTaken.userMessage).toMatch(`slug "${id}"`)

      const bad = await failure(createTenant(h.db, { id: 'Not Valid', name: 'X', userId }))
      expect(bad.code).toBe('config_invalid')
      expect(bad.userMessage).toMatch('"Not Valid" is not a valid tenant id')
      expect(await audits(id)).toHaveLength(1)
    })
  })

  describe('connections', () => {
    it('stores the connection encrypted, without secrets in config or audit', async () => {
      const tenantId = await newTenant()
      const result = await connect(deps(), {
        tenantId,
        connectorType: 'test-pages',
        configJson: goodConfig(),
        userId,
      })
      expect(result).toMatchObject({
        status: 'connected',
        created: true,
        health: { status: 'healthy' },
      })

      const row = await connection(tenantId)
      expect(row).toMatchObject({
        id: result.connectorId,
        status: 'connected',
        config: { baseUrl: fake.url },
      })
      expect(row?.config).not.toHaveProperty('apiKey')
      expect(row?.encryptedCredentials).toMatch(/^gcm1\./)
      expect(row?.encryptedCredentials).not.toContain(fake.apiKey)

      // Reconnecting updates the same row.
      const again = await connect(deps(), {
        tenantId,
        connectorType: 'test-pages',
        configJson: goodConfig(),
        userId,
      })
      expect(again).toMatchObject({ connectorId: result.connectorId, created: false })

      const entries = await audits(tenantId)
      expect(entries.map((e) => e.action)).toEqual([
        'tenant.create',
        'connector.create',
        'connector.update',
      ])
      expect(entries[1]?.changes).toEqual({
        after: {
          type: 'test-pages',
          status: 'connected',
          config: { baseUrl: fake.url },
          lastSyncError: null,
        },
      })
      expect(entries[2]?.changes.before).toMatchObject({ status: 'connected' })
      expect(JSON.stringify(entries)).not.toContain(fake.apiKey)
    })

    it('names the failing key of a bad config and stores nothing', async () => {
      const tenantId = await newTenant()
      const missing = await failure(
        connect(deps(), {
          tenantId,
          connectorType: 'test-pages',
          configJson: { baseUrl: fake.url },
          userId,
        }),
      )
      expect(missing.code).toBe('config_invalid')
      expect(missing.userMessage).toBe('Invalid config for test-pages: "apiKey" is required')

      const badUrl = await failure(
        connect(deps(), {
          tenantId,
          connectorType: 'test-pages',
          configJson: { baseUrl: 'nope', apiKey: fake.apiKey },
          userId,
        }),
      )
      expect(badUrl.userMessage).toMatch(/^Invalid config for test-pages: "baseUrl": /)
      expect(badUrl.userMessage).not.toContain(fake.apiKey)
      expect(await connection(tenantId)).toBeUndefined()
    })

    it('refuses an unknown tenant, an unknown connector and a rejected key', async () => {
      const ghost = uniqueTenantId('ghost')
      const noTenant = await failure(
        connect(deps(), {
          tenantId: ghost,
          connectorType: 'test-pages',
          configJson: goodConfig(),
          userId,
        }),
      )
      expect(noTenant.code).toBe('tenant_unknown')
      expect(noTenant.userMessage).toBe(
        `Tenant "${ghost}" does not exist. Create it with: gtm-agent tenants create ${ghost} --name "..."`,
      )

      const tenantId = await newTenant()
      const unknown = await failure(
        connect(deps(), { tenantId, connectorType: 'nope', configJson: {}, userId }),
      )
      expect(unknown.code).toBe('connector_unknown')
      expect(unknown.userMessage).toBe(
        'Unknown connector "nope". Known connectors: test-pages, test-pages-two.',
      )

      const wrongKey = await failure(
        connect(deps(), {
          tenantId,
          connectorType: 'test-pages',
          configJson: { ...goodConfig(), apiKey: 'wrong-key-123' },
          userId,
        }),
      )
      expect(wrongKey.code).toBe('vendor_auth_failed')
      expect(await connection(tenantId)).toBeUndefined()
    })

    it('reports health, and "down" when the source is unreachable', async () => {
      const other = await startPagerFake({ apiKey: fake.apiKey })
      const tenantId = await newTenant()
      await connect(deps(), {
        tenantId,
        connectorType: 'test-pages',
        configJson: { baseUrl: other.url, apiKey: fake.apiKey },
        userId,
      })
      expect(await health(deps(), { tenantId, connectorType: 'test-pages' })).toMatchObject({
        status: 'healthy',
      })
      await other.close()
      const down = await health(deps(), { tenantId, connectorType: 'test-pages' })
      expect(down.status).toBe('down')
      expect(down.message).not.toBe('')
    })

    it('disconnects: credentials dropped, cursor kept, audited', async () => {
      const tenantId = await connected()
      await withTenant(h.db, tenantId, (tx) =>
        tx.update(connectors).set({ cursor: '42' }).where(eq(connectors.type, 'test-pages')),
      )
      await disconnect(deps(), { tenantId, connectorType: 'test-pages', userId })

      expect(await connection(tenantId)).toMatchObject({
        status: 'disconnected',
        encryptedCredentials: null,
        cursor: '42',
      })
      const last = (await audits(tenantId)).at(-1)
      expect(last).toMatchObject({ action: 'connector.disconnect', resource: 'connector' })
      expect(last?.changes).toMatchObject({
        before: { status: 'connected' },
        after: { status: 'disconnected' },
      })

      const gone = await failure(health(deps(), { tenantId, connectorType: 'test-pages' }))
      expect(gone.code).toBe('connector_not_connected')
      const never = await failure(
        disconnect(deps(), { tenantId, connectorType: 'test-pages-two', userId }),
      )
      expect(never.code).toBe('connector_not_connected')
      const unknown = await failure(disconnect(deps(), { tenantId, connectorType: 'nope', userId }))
      expect(unknown.code).toBe('connector_unknown')
    })
  })

  describe('mappings', () => {
    const target = (tenantId: string) => ({
      tenantId,
      connectorType: 'test-pages',
      entityType: 'person' as const,
      registry,
    })
    const storedOverrides = (tenantId: string) =>
      withTenant(h.db, tenantId, (tx) =>
        tx.select().from(fieldMappings).where(eq(fieldMappings.entityType, 'person')),
      )

    it('sets, gets and resets overrides, auditing each change', async () => {
      const tenantId = await connected()
      const initial = await getMappings(h.db, target(tenantId))
      expect(initial.overrides).toEqual([])
      expect(initial.effective).toEqual(testConnector.getSchema('person'))

      const override = {
        sourceField: 'contact.mail',
        targetField: 'email',
        transform: 'lowercase' as const,
      }
      const set = await setMappings(h.db, { ...target(tenantId), mappings: [override], userId })
      expect(set.overrides).toEqual([override])
      expect(set.effective.find((m) => m.targetField === 'email')).toEqual(override)
      expect(set.effective).toHaveLength(initial.effective.length)

      const read = await getMappings(h.db, target(tenantId))
      expect(read).toEqual(set)
      const [row] = await storedOverrides(tenantId)
      expect(row).toMatchObject({ isDefault: false, mappings: [override] })

      const reset = await resetMappings(h.db, { ...target(tenantId), userId })
      expect(reset).toMatchObject({ removed: true, overrides: [], effective: initial.effective })
      expect(await storedOverrides(tenantId)).toEqual([])

      const entries = (await audits(tenantId)).filter((e) => e.action.startsWith('mapping.'))
      expect(entries.map((e) => [e.action, e.changes])).toEqual([
        ['mapping.update', { before: [], after: [override] }],
        ['mapping.reset', { before: [override], after: [] }],
      ])
    })

    it('refuses an invalid mapping naming the field, changing nothing', async () => {
      const tenantId = await connected()
      const good = { sourceField: 'title', targetField: 'title', transform: 'trim' as const }
      await setMappings(h.db, { ...target(tenantId), mappings: [good], userId })
      const auditCount = (await audits(tenantId)).length

      const badTarget = await failure(
        setMappings(h.db, {
          ...target(tenantId),
          mappings: [{ sourceField: 'x', targetField: 'shoeSize', transform: 'none' }],
          userId,
        }),
      )
      expect(badTarget.code).toBe('mapping_invalid')
      expect(badTarget.userMessage).toMatch('"shoeSize"')

      const badTransform = await failure(
        setMappings(h.db, {
          ...target(tenantId),
          mappings: [{ sourceField: 'x', targetField: 'email', transform: 'shout' }],
          userId,
        }),
      )
      expect(badTransform.userMessage).toMatch('target field "email"')

      expect((await storedOverrides(tenantId))[0]?.mappings).toEqual([good])
      expect(await audits(tenantId)).toHaveLength(auditCount)
    })

    it('needs the connector to be connected for the tenant', async () => {
      const tenantId = await newTenant()
      const err = await failure(getMappings(h.db, target(tenantId)))
      expect(err.code).toBe('connector_not_connected')
      expect(err.userMessage).toMatch(`gtm-agent connect test-pages --tenant ${tenantId}`)
    })
  })

  describe('key rotation', () => {
    it('re-encrypts credentials made with an older key and audits per tenant', async () => {
      const oldHex = hexKey()
      const newHex = hexKey()
      const oldRing = keyringFromHex(oldHex)
      const newRing = keyringFromHex(newHex, [oldHex])
      const a = await connected('test-pages', oldRing)
      const b = await connected('test-pages', oldRing)
      await connect(
        { ...deps(), keyring: newRing },
        { tenantId: b, connectorType: 'test-pages-two', configJson: goodConfig(), userId },
      )

      const rotation = { handle: h, keyring: newRing, log, userId }
      const result = await rotateKeys(rotation, { tenantIds: [a, b] })
      expect(result).toEqual({
        rotated: 2,
        alreadyCurrent: 1,
        tenants: 2,
        toKeyId: newRing.currentKeyId,
      })

      for (const tenantId of [a, b]) {
        expect((await connection(tenantId))?.encryptedCredentials).toMatch(
          `gcm1.${newRing.currentKeyId}.`,
        )
        const entry = (await audits(tenantId)).find((e) => e.action === 'keys.rotate')
        expect(entry?.metadata).toEqual({
          connectors: 1,
          fromKeyIds: [oldRing.currentKeyId],
          toKeyId: newRing.currentKeyId,
        })
      }
      // The new key alone now reads them.
      const onlyNew = { ...deps(), keyring: keyringFromHex(newHex) }
      expect(await health(onlyNew, { tenantId: a, connectorType: 'test-pages' })).toMatchObject({
        status: 'healthy',
      })

      const second = await rotateKeys(rotation, { tenantIds: [a, b] })
      expect(second).toMatchObject({ rotated: 0, alreadyCurrent: 3 })
    })

    it('stops at a credential no key decrypts, leaving that tenant untouched', async () => {
      const oldHex = hexKey()
      const oldRing = keyringFromHex(oldHex)
      const lostRing = keyringFromHex(hexKey())
      const newRing = keyringFromHex(hexKey(), [oldHex])
      const tenantId = await connected('test-pages', oldRing)
      await connect(
        { ...deps(), keyring: lostRing },
        { tenantId, connectorType: 'test-pages-two', configJson: goodConfig(), userId },
      )
      const before = await connection(tenantId)

      const err = await failure(
        rotateKeys({ handle: h, keyring: newRing, log, userId }, { tenantIds: [tenantId] }),
      )
      expect(err.code).toBe('decryption_failed')
      expect(err.userMessage).toMatch(`tenant "${tenantId}", connector test-pages-two`)
      // test-pages sorts first and was re-encrypted inside the transaction, then rolled back.
      expect((await connection(tenantId))?.encryptedCredentials).toBe(before?.encryptedCredentials)
      expect((await audits(tenantId)).some((e) => e.action === 'keys.rotate')).toBe(false)
    })
  })

  it('never writes a secret into the audit log', async () => {
    const all = await Promise.all(
      (await listTenants(h.db)).filter((t) => t.id.startsWith('svc-')).map((t) => audits(t.id)),
    )
    const text = JSON.stringify(all.flat())
    expect(text).toContain('connector.create')
    expect(text).not.toContain(fake.apiKey)
  })
})
