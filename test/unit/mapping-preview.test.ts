import { describe, expect, it } from 'vitest'
import type { FieldMapping, SourceRecord } from '../../shared/schemas.js'
import { previewMappings } from '../../src-agent/pipeline/mapping-preview.js'
import { prepareBatch } from '../../src-agent/pipeline/prepare.js'

const mappings: FieldMapping[] = [
  { sourceField: 'id', targetField: 'externalId', transform: 'none' },
  { sourceField: 'kind', targetField: 'type', transform: 'uppercase' },
  { sourceField: 'at', targetField: 'occurredAt', transform: 'none' },
  { sourceField: 'email', targetField: 'properties.email', transform: 'lowercase' },
]
const activity = (
  data: Record<string, unknown>,
  extra: Partial<SourceRecord> = {},
): SourceRecord => ({
  entityType: 'activity',
  data,
  ...extra,
})

describe('previewMappings: samples through draft mappings, as a sync would map them', () => {
  const records: SourceRecord[] = [
    activity({
      id: 'a1',
      kind: 'open',
      at: '2025-03-01T10:00:00Z',
      email: 'A@X.COM',
      apiToken: 't0k',
    }),
    { entityType: 'person', data: { id: 'p1' } },
    activity({ id: 'a2', kind: 'open', at: 'not a date' }),
    activity({ id: 'a3' }, { deleted: true }),
    activity({ id: 'a4', kind: 'click', at: '2025-03-02T10:00:00Z' }),
  ]

  it('keeps the source order, skips other entity types, and makes rows plain JSON', () => {
    const preview = previewMappings({ entityType: 'activity', records, mappings, limit: 10 })
    expect(preview.mappingError).toBeNull()
    expect(preview.rows.map((r) => r.externalId)).toEqual(['a1', 'a2', 'a3', 'a4'])
    expect(preview.rows[0]).toEqual({
      externalId: 'a1',
      // Secret-looking keys never reach the screen.
      raw: { id: 'a1', kind: 'open', at: '2025-03-01T10:00:00Z', email: 'A@X.COM' },
      canonical: {
        externalId: 'a1',
        type: 'OPEN',
        occurredAt: '2025-03-01T10:00:00.000Z',
        properties: { email: 'a@x.com' },
      },
      deleted: false,
      rejects: [],
    })
    expect(JSON.parse(JSON.stringify(preview.rows[0]))).toEqual(preview.rows[0])
    expect(preview.rows[1]).toMatchObject({ canonical: null, rejects: [{ field: 'occurredAt' }] })
    expect(preview.rows[2]).toMatchObject({ canonical: null, deleted: true, rejects: [] })
    expect(preview).toMatchObject({ accepted: 3, rejected: 1 })
  })

  it('rejects exactly what a sync page rejects, for the same reason', () => {
    const preview = previewMappings({ entityType: 'activity', records, mappings, limit: 10 })
    const batch = prepareBatch({ entityType: 'activity', records, mappings })
    const fromPreview = preview.rows.flatMap((r) =>
      r.rejects.map((x) => ({ externalId: r.externalId, ...x })),
    )
    const fromSync = batch.rejects
      .filter((r) => r.field !== 'entityType')
      .map(({ externalId, field, reason }) => ({ externalId, field, reason }))
    expect(fromPreview).toEqual(fromSync)
  })

  it('stops at the limit, and answers an invalid draft with its error and no rows', () => {
    expect(
      previewMappings({ entityType: 'activity', records, mappings, limit: 2 }).rows,
    ).toHaveLength(2)
    const broken = previewMappings({
      entityType: 'activity',
      records,
      mappings: mappings.filter((m) => m.targetField !== 'type'),
      limit: 10,
    })
    expect(broken).toEqual({
      mappingError: 'Mapping for activity: required field "type" is not mapped to any source field',
      rows: [],
      accepted: 0,
      rejected: 0,
    })
  })
})
