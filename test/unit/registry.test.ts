import { describe, expect, it } from 'vitest'
import { exampleConnector } from '../../src-agent/connectors/__example__/index.js'
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
        dataTypes: ['person'],
      },
    ])
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
