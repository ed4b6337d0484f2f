/**
 * The built-in connectors. Each built-in connector's module is imported here, for its side
 * effect: loading the module registers the connector with `connectorRegistry`. A new vendor
 * adds one line.
 *
 * Connectors that ship outside this repository are loaded from GTM_CONNECTOR_MODULES instead
 * (see `loadConnectorModules` in src-agent/config.ts).
 */
import './salesforce/index.js'
import './delivrai/index.js'
import './fathom/index.js'
import './customerio/index.js'
import './o365/index.js'
