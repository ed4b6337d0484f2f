import { describe, it, expect } from 'vitest'
import { ConfigError } from '../../shared/errors.js'
import type { FieldMapping } from '../../shared/schemas.js'
import {
  applyTransform,
  getPath,
  isValidTargetField,
  mapRecord,
  mergeMappings,
  resolveMappings,
  validateMappings,
} from '../../src-agent/pipeline/mapping.js'

const m = (
  sourceField: string,
  targetField: string,
  extra: Partial<FieldMapping> = {},
): FieldMapping => ({ sourceField, targetField, transform: 'none', ...extra })

const accountDefaults: FieldMapping[] = [
  m('Id', 'externalId'),
  m('Name', 'name'),
  m('Website', 'domain'),
  m('Industry', 'industry'),
]

/** The ConfigError a call throws; fails the test when it does not throw one. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return err as ConfigError
  }
  throw new Error('expected a ConfigError, nothing was thrown')
}

describe('getPath', () => {
  const raw = { Id: '1', Account: { Name: 'Acme', Owner: null, Tags: ['a', 'b'] }, Zero: 0 }

  it('reads top-level and dotted paths', () => {
    expect(getPath(raw, 'Id')).toBe('1')
    expect(getPath(raw, 'Account.Name')).toBe('Acme')
    expect(getPath(raw, 'Account.Tags.1')).toBe('b')
    expect(getPath(raw, 'Zero')).toBe(0)
  })

  it('yields undefined for null, missing or non-object steps', () => {
    expect(getPath(raw, 'Account.Owner.Name')).toBeUndefined()
    expect(getPath(raw, 'Account.Owner')).toBeUndefined()
    expect(getPath(raw, 'Missing.Name')).toBeUndefined()
    expect(getPath(raw, 'Id.length')).toBeUndefined()
    expect(getPath(null, 'Id')).toBeUndefined()
  })

  it('does not read inherited properties', () => {
    expect(getPath({}, 'constructor')).toBeUndefined()
    expect(getPath({ a: {} }, 'a.toString')).toBeUndefined()
  })
})

describe('applyTransform', () => {
  it('applies each transform to strings', () => {
    expect(applyTransform(' MiXed ', 'none')).toBe(' MiXed ')
    expect(applyTransform(' MiXed ', 'lowercase')).toBe(' mixed ')
    expect(applyTransform(' MiXed ', 'uppercase')).toBe(' MIXED ')
    expect(applyTransform(' MiXed ', 'trim')).toBe('MiXed')
  })

  it('passes other types through unchanged', () => {
    const date = new Date()
    expect(applyTransform(42, 'uppercase')).toBe(42)
    expect(applyTransform(true, 'trim')).toBe(true)
    expect(applyTransform(date, 'lowercase')).toBe(date)
    expect(applyTransform(null, 'trim')).toBeNull()
  })
})

describe('mapRecord', () => {
  it('maps dotted paths with transforms and leaves unmapped fields absent', () => {
    const raw = {
      Id: '003',
      Email: '  Ada@Example.COM ',
      FirstName: 'ada',
      Account: { Id: '001', Name: 'Acme' },
      Title: null,
      Unmapped: 'ignored',
    }
    const record = mapRecord('person', raw, [
      m('Id', 'externalId'),
      m('Email', 'email', { transform: 'trim' }),
      m('FirstName', 'firstName', { transform: 'uppercase' }),
      m('Account.Id', 'accountExternalId', { transform: 'lowercase' }),
      m('Title', 'title'),
      m('Phone', 'phone'),
    ])
    expect(record).toEqual({
      externalId: '003',
      email: 'Ada@Example.COM',
      firstName: 'ADA',
      accountExternalId: '001',
    })
    expect(Object.keys(record)).not.toContain('title')
    expect(Object.keys(record)).not.toContain('phone')
  })

  it('writes properties.<key> targets into the properties object of an activity', () => {
    const raw = { id: 'e1', kind: 'open', at: '2024-01-01', meta: { campaign: 'Q1' }, extra: 7 }
    const record = mapRecord('activity', raw, [
      m('id', 'externalId'),
      m('kind', 'type'),
      m('at', 'occurredAt'),
      m('meta', 'properties'),
      m('extra', 'properties.score'),
      m('meta.campaign', 'properties.campaign', { transform: 'uppercase' }),
    ])
    expect(record).toEqual({
      externalId: 'e1',
      type: 'open',
      occurredAt: '2024-01-01',
      properties: { campaign: 'Q1'.toUpperCase(), score: 7 },
    })
    // The vendor payload itself is not mutated.
    expect(raw.meta).toEqual({ campaign: 'Q1' })
  })
})

describe('validateMappings', () => {
  it('returns a valid list, parsed', () => {
    const input = [...accountDefaults, { ...m('Employees', 'employeeCount'), ignored: 1 }]
    const result = validateMappings('account', input)
    expect(result).toHaveLength(5)
    expect(result[4]).toEqual({
      sourceField: 'Employees',
      targetField: 'employeeCount',
      transform: 'none',
    })
  })

  it('allows properties.<key> targets only for activity', () => {
    expect(isValidTargetField('activity', 'properties.campaign')).toBe(true)
    expect(isValidTargetField('activity', 'properties.')).toBe(false)
    expect(isValidTargetField('account', 'properties.campaign')).toBe(false)
    const activity = [m('id', 'externalId'), m('k', 'type'), m('t', 'occurredAt')]
    expect(validateMappings('activity', [...activity, m('c', 'properties.campaign')])).toHaveLength(
      4,
    )
  })

  it('refuses an unknown target field, naming it and the expected fields', () => {
    const err = configError(() =>
      validateMappings('account', [m('Id', 'externalId'), m('Name', 'nmae')]),
    )
    expect(err.code).toBe('mapping_invalid')
    expect(err.userMessage).toBe(
      'Mapping for account: target field "nmae" is not a canonical account field ' +
        '(expected one of: externalId, name, domain, industry, employeeCount, annualRevenue)',
    )
  })

  it('refuses properties.<key> on a non-activity entity', () => {
    const err = configError(() =>
      validateMappings('person', [m('Id', 'externalId'), m('X', 'properties.x')]),
    )
    expect(err.userMessage).toContain('target field "properties.x" is not a canonical person field')
  })

  it('refuses a required canonical field left unmapped', () => {
    const err = configError(() => validateMappings('account', [m('Id', 'externalId')]))
    expect(err.code).toBe('mapping_invalid')
    expect(err.userMessage).toBe(
      'Mapping for account: required field "name" is not mapped to any source field',
    )
    const activityErr = configError(() =>
      validateMappings('activity', [m('id', 'externalId'), m('k', 'type')]),
    )
    expect(activityErr.userMessage).toContain('required field "occurredAt"')
  })

  it('skips the required-field check for a partial list', () => {
    expect(validateMappings('account', [m('Acct', 'name')], { partial: true })).toHaveLength(1)
  })

  it('refuses a transform outside the four, naming the transform and the field', () => {
    const err = configError(() =>
      validateMappings('account', [
        m('Id', 'externalId'),
        { sourceField: 'Name', targetField: 'name', transform: 'titlecase' },
      ]),
    )
    expect(err.code).toBe('mapping_invalid')
    expect(err.userMessage).toBe(
      'Mapping for account: target field "name" has transform "titlecase", which is not one of: ' +
        'none, lowercase, uppercase, trim',
    )
  })

  it('refuses a missing transform', () => {
    const err = configError(() =>
      validateMappings('person', [{ sourceField: 'Id', targetField: 'externalId' }]),
    )
    expect(err.userMessage).toContain('target field "externalId" has no transform')
  })

  it('refuses a duplicate targetField', () => {
    const err = configError(() =>
      validateMappings('account', [...accountDefaults, m('AccountName', 'name')]),
    )
    expect(err.userMessage).toBe(
      'Mapping for account: target field "name" is mapped more than once',
    )
  })

  it('refuses an empty or blank sourceField, naming the target', () => {
    for (const sourceField of ['', '   ']) {
      const err = configError(() =>
        validateMappings('account', [m('Id', 'externalId'), m(sourceField, 'name')]),
      )
      expect(err.code).toBe('mapping_invalid')
      expect(err.userMessage).toBe(
        'Mapping for account: target field "name" has an empty sourceField',
      )
    }
    const dotted = configError(() =>
      validateMappings('account', [m('Id', 'externalId'), m('Account..Name', 'name')]),
    )
    expect(dotted.userMessage).toContain('sourceField "Account..Name" with an empty path segment')
  })

  it('refuses a non-list and a non-object entry', () => {
    expect(configError(() => validateMappings('person', { Id: 'externalId' })).userMessage).toBe(
      'Mapping for person: expected a list of field mappings',
    )
    expect(configError(() => validateMappings('person', ['Id'])).userMessage).toBe(
      'Mapping for person: mapping #1 is not an object with sourceField, targetField and transform',
    )
  })
})

describe('mergeMappings', () => {
  it('replaces the default with the same target in place and appends new targets', () => {
    const overrides = [
      m('Domain__c', 'domain', { transform: 'lowercase' }),
      m('NumberOfEmployees', 'employeeCount'),
    ]
    expect(mergeMappings(accountDefaults, overrides)).toEqual([
      m('Id', 'externalId'),
      m('Name', 'name'),
      m('Domain__c', 'domain', { transform: 'lowercase' }),
      m('Industry', 'industry'),
      m('NumberOfEmployees', 'employeeCount'),
    ])
  })

  it('returns the defaults when there are no overrides (reset to defaults)', () => {
    expect(mergeMappings(accountDefaults, [])).toEqual(accountDefaults)
  })

  it('does not mutate its inputs', () => {
    const defaults = [...accountDefaults]
    mergeMappings(defaults, [m('X', 'name')])
    expect(defaults).toEqual(accountDefaults)
  })
})

describe('resolveMappings', () => {
  it('validates overrides and the merged result', () => {
    expect(resolveMappings('account', accountDefaults, [m('Acct', 'name')])[1]).toEqual(
      m('Acct', 'name'),
    )
    expect(resolveMappings('account', accountDefaults, undefined)).toEqual(accountDefaults)
    const err = configError(() => resolveMappings('account', accountDefaults, [m('X', 'revenue')]))
    expect(err.userMessage).toContain('target field "revenue" is not a canonical account field')
  })
})
