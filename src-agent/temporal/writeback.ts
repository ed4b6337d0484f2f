/**
 * Writeback through Temporal: queueing updates wakes (or starts) the one writeback workflow of
 * the connection with signal-with-start; the workflow drains the queue (pipeline/writeback/send.ts).
 */
import type { Client } from '@temporalio/client'
import type { DbHandle } from '../../db/client.js'
import { writebackWorkflowId } from '../../shared/temporal.js'
import type { ConnectorRegistry } from '../connectors/registry.js'
import { queueWriteback } from '../pipeline/writeback/queue.js'
import { writeback, writebackEnqueuedSignal, type WritebackInput } from './workflows.js'

export interface EnqueueDeps {
  handle: DbHandle
  client: Client
  taskQueue: string
  registry: ConnectorRegistry
  userId: string
}

/**
 * Queues updates for a connection's source and wakes its writeback workflow. The rows and their
 * audit entry commit before the signal is sent, so a workflow that wakes always finds them.
 */
export async function enqueueWriteback(
  deps: EnqueueDeps,
  input: {
    tenantId: string
    connectorType: string
    items: unknown[]
    workflow?: Omit<WritebackInput, 'tenantId' | 'connectorType'>
  },
): Promise<{ queued: number; workflowId: string }> {
  const { queued } = await queueWriteback(deps, input)
  const workflowId = await wakeWriteback(deps, input)
  return { queued, workflowId }
}

/** Signals the connection's writeback workflow that items are queued, starting it when none runs. */
export async function wakeWriteback(
  deps: { client: Client; taskQueue: string },
  input: {
    tenantId: string
    connectorType: string
    workflow?: Omit<WritebackInput, 'tenantId' | 'connectorType'>
  },
): Promise<string> {
  const { tenantId, connectorType } = input
  const workflowId = writebackWorkflowId(tenantId, connectorType)
  await deps.client.workflow.signalWithStart(writeback, {
    workflowId,
    taskQueue: deps.taskQueue,
    args: [{ ...input.workflow, tenantId, connectorType }],
    signal: writebackEnqueuedSignal,
    signalArgs: [],
  })
  return workflowId
}
