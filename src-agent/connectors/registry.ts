import { AppError } from '../../shared/errors.js'
import type { ConnectorInfo } from '../../shared/schemas.js'
import type { AnyConnector } from './interface.js'
import { checkStreams, streamsOf } from './streams.js'

const semver = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/
const connectorId = /^[a-z][a-z0-9_-]{1,62}$/

/** Every connector the agent can run. Connectors register themselves when their module loads. */
export class ConnectorRegistry {
  readonly #connectors = new Map<string, AnyConnector>()

  /** Adds a connector; an id registered twice, or a malformed id or version, throws. */
  register(connector: AnyConnector): void {
    if (!connectorId.test(connector.id)) {
      throw new AppError('config_invalid', `Connector id "${connector.id}" is not a valid id.`)
    }
    if (!semver.test(connector.version)) {
      throw new AppError(
        'internal',
        `Connector "${connector.id}" has version "${connector.version}", which is not SemVer.`,
      )
    }
    const streams = checkStreams(connector)
    if (streams) {
      throw new AppError(
        'internal',
        `Connector "${connector.id}" cannot be registered: ${streams}.`,
      )
    }
    const signingKey = connector.webhooks?.signingKeyConfigKey
    if (signingKey !== undefined && !connector.secretConfigKeys.includes(signingKey)) {
      throw new AppError(
        'internal',
        `Connector "${connector.id}" signs webhooks with "${signingKey}", which is not one of its secretConfigKeys.`,
      )
    }
    if (this.#connectors.has(connector.id)) {
      throw new AppError(
        'connector_duplicate',
        `A connector with id "${connector.id}" is already registered.`,
      )
    }
    this.#connectors.set(connector.id, connector)
  }

  has(id: string): boolean {
    return this.#connectors.has(id)
  }

  /** The connector with this id; an unknown id throws naming the ones that exist. */
  get(id: string): AnyConnector {
    const connector = this.#connectors.get(id)
    if (!connector) {
      const known = [...this.#connectors.keys()].sort().join(', ') || 'none'
      throw new AppError(
        'connector_unknown',
        `Unknown connector "${id}". Known connectors: ${known}.`,
      )
    }
    return connector
  }

  list(): AnyConnector[] {
    return [...this.#connectors.values()].sort((a, b) => a.id.localeCompare(b.id))
  }

  /** What the CLI and the app show about each connector. */
  describe(): ConnectorInfo[] {
    return this.list().map((c) => ({
      id: c.id,
      name: c.name,
      version: c.version,
      authMethod: c.authMethod,
      dataTypes: [...c.dataTypes],
      streams: streamsOf(c).map((s) => ({
        id: s.id,
        name: s.name,
        entityType: s.entityType,
        partitioned: s.partitioned === true,
      })),
    }))
  }
}

export const connectorRegistry = new ConnectorRegistry()
