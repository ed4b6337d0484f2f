import { describe, expect, it } from 'vitest'
import { exampleConnector } from '../../src-agent/connectors/__example__/index.js'
import type { StreamDefinition } from '../../src-agent/connectors/interface.js'
import { ConnectorRegistry, connectorRegistry } from '../../src-agent/connectors/registry.js'
import { validateMappings } from '../../src-agent/pipeline/mapping.js'
import '../../src-agent/connectors/index.js'

describe('connector registry', () => {
  it('registers, lists, gets and describes connectors', () => {
    const registry = new ConnectorRegistry()
    registry.register(exampleConnector)
    expect(registry.has('example')).toBe(true)
    expect(registry.get('example')).toBe(exampleConnector)
    expect(registry.list().map((c) => c.id)).toEqual(['example'])
    expect(registry.describe()).toEqual([
      {
        id: 'example',
        name: 'Example',
        version: '0.1.0',
        authMethod: 'api_key',
        dataTypes: ['person', 'activity'],
        streams: [
          { id: 'contacts', name: 'Contacts', entityType: 'person', partitioned: false },
          { id: 'meetings', name: 'Meetings', entityType: 'activity', partitioned: true },
        ],
      },
    ])
  })

  it('refuses streams that could not be stored apart', () => {
    const registry = new ConnectorRegistry()
    const [contacts, meetings] = exampleConnector.streams!
    const refused = (streams: StreamDefinition[]) => () =>
      registry.register({ ...exampleConnector, id: 'streamy', streams })
    expect(refused([contacts!, { ...contacts!, name: 'Again' }])).toThrow(
      'Connector "streamy" cannot be registered: stream "contacts" is declared twice.',
    )
    expect(refused([{ ...contacts!, id: 'Contacts' }])).toThrow(/stream id "Contacts" is not valid/)
    expect(refused([{ ...contacts!, entityType: 'account' }])).toThrow(
      /produces account records, which are not among its data types \(person, activity\)/,
    )
    expect(refused([contacts!, { ...contacts!, id: 'leads' }])).toThrow(
      /streams "contacts" and "leads" both produce person records/,
    )
    const { listPartitions: _listed, ...unlisted } = exampleConnector
    expect(() => registry.register({ ...unlisted, id: 'streamy', streams: [meetings!] })).toThrow(
      /"meetings" is partitioned but the connector has no listPartitions/,
    )
    // Ids unique across the source: two person streams may coexist.
    registry.register({
      ...exampleConnector,
      id: 'streamy',
      streams: [contacts!, { ...contacts!, id: 'leads' }],
      idsUniqueAcrossStreams: true,
    })
    expect(registry.has('streamy')).toBe(true)
  })

  it('refuses an id registered twice', () => {
    const registry = new ConnectorRegistry()
    registry.register(exampleConnector)
    expect(() => registry.register({ ...exampleConnector })).toThrow(/already registered/)
  })

  it('refuses a version that is not SemVer', () => {
    const registry = new ConnectorRegistry()
    expect(() => registry.register({ ...exampleConnector, version: 'v1' })).toThrow(/not SemVer/)
  })

  it('names the known connectors when asked for an unknown one', () => {
    const registry = new ConnectorRegistry()
    registry.register(exampleConnector)
    expect(() => registry.get('nope')).toThrow(
      'Unknown connector "nope". Known connectors: example.',
    )
  })

  it('does not register the example scaffold', () => {
    expect(connectorRegistry.has('example')).toBe(false)
  })

  it('ships default mappings the mapping stage accepts', () => {
    expect(() => validateMappings('person', exampleConnector.getSchema('person'))).not.toThrow()
    expect(exampleConnector.getSchema('account')).toEqual([])
  })
})
