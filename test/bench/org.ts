import type { SObjectType } from '../fakes/salesforce.js'

/**
 * The org a benchmark run reads, sized by its Contacts: every object a Salesforce sync reads,
 * in proportions like a B2B org's (a Lead, a Task and an Event for every four Contacts, an
 * Account and an Opportunity for every ten).
 */
export function orgCounts(contacts: number): Record<SObjectType, number> {
  return {
    Contact: contacts,
    Lead: Math.round(contacts / 4),
    Account: Math.round(contacts / 10),
    Opportunity: Math.round(contacts / 10),
    Task: Math.round(contacts / 4),
    Event: Math.round(contacts / 4),
  }
}

/** Every record of the org: what a full sync writes. */
export function orgRecords(contacts: number): number {
  return Object.values(orgCounts(contacts)).reduce((a, b) => a + b, 0)
}

/**
 * How long the fake takes over a Bulk job, whatever the polling: Salesforce queues and runs a
 * job before its results can be read.
 */
export const BULK_JOB_MS = 200
