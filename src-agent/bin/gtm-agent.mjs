#!/usr/bin/env node
// The `gtm-agent` command. It runs the built agent (out/agent, made by `npm run build`) when that
// build is at least as new as every source file, and the TypeScript sources through tsx
// otherwise, so a checkout never runs a build older than its code and needs no build step.
// GTM_AGENT_FROM_SOURCE=1 always runs the sources; so does a TypeScript module in
// GTM_CONNECTOR_MODULES. An installed package has no sources: it runs its build, without tsx.
// See chooseAgent in agent-entry.mjs.
import { chooseAgent } from './agent-entry.mjs'

const agent = chooseAgent()
if (agent.from === 'source') {
  const { register } = await import('tsx/esm/api')
  register()
}
const { runAgentProcess } = await import(agent.entry.href)
await runAgentProcess()
