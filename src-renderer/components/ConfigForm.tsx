import type { ReactNode } from 'react'

/** The subset of JSON Schema the connectors' config schemas use. */
type PropertySchema = {
  type?: string | string[]
  format?: string
  enum?: unknown[]
  default?: unknown
  description?: string
  items?: { type?: string }
  anyOf?: PropertySchema[]
  minimum?: number
  maximum?: number
}

export interface FormField {
  key: string
  label: string
  kind: 'text' | 'secret' | 'url' | 'number' | 'boolean' | 'select' | 'list'
  required: boolean
  options?: string[]
  description?: string
  defaultValue?: unknown
}

const acronyms: Record<string, string> = {
  id: 'ID',
  url: 'URL',
  api: 'API',
  dpa: 'DPA',
}

/** "clientId" → "Client ID", "graphBaseUrl" → "Graph base URL". */
export function humanize(key: string): string {
  const words = key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/[_-]+/g, ' ')
    .toLowerCase()
    .split(' ')
    .map((w) => acronyms[w] ?? w)
  const first = words[0] ?? ''
  return [first.charAt(0).toUpperCase() + first.slice(1), ...words.slice(1)].join(' ')
}

/**
 * The form fields of a connector's config from its JSON Schema; keys the admin cannot type
 * (tokens a sign-in obtains) and the `hidden` ones are left out.
 */
export function formFields(
  schema: Record<string, unknown>,
  secretKeys: readonly string[],
  hidden: readonly string[] = [],
): FormField[] {
  const properties = (schema['properties'] ?? {}) as Record<string, PropertySchema>
  const required = new Set((schema['required'] ?? []) as string[])
  const fields: FormField[] = []
  for (const [key, raw] of Object.entries(properties)) {
    if (hidden.includes(key)) continue
    const property = raw.anyOf?.find((p) => p.type !== 'null') ?? raw
    const type = Array.isArray(property.type) ? property.type[0] : property.type
    if (!type && !property.enum) continue
    const kind: FormField['kind'] = secretKeys.includes(key)
      ? 'secret'
      : property.enum
        ? 'select'
        : type === 'boolean'
          ? 'boolean'
          : type === 'number' || type === 'integer'
            ? 'number'
            : type === 'array'
              ? 'list'
              : property.format === 'uri'
                ? 'url'
                : 'text'
    fields.push({
      key,
      label: humanize(key),
      kind,
      required: required.has(key) && raw.default === undefined,
      ...(property.enum ? { options: property.enum.map(String) } : {}),
      ...(raw.description ? { description: raw.description } : {}),
      ...(raw.default !== undefined ? { defaultValue: raw.default } : {}),
    })
  }
  // Required fields first, in schema order; optional ones after.
  return [...fields.filter((f) => f.required), ...fields.filter((f) => !f.required)]
}

export type FormValues = Record<string, string | boolean>

/** The config object the agent takes, from the form's values; empty optional fields left out. */
export function configFromValues(fields: FormField[], values: FormValues): Record<string, unknown> {
  const config: Record<string, unknown> = {}
  for (const field of fields) {
    const value = values[field.key]
    if (value === undefined || value === '') continue
    if (field.kind === 'boolean') config[field.key] = value === true
    else if (field.kind === 'number') config[field.key] = Number(value)
    else if (field.kind === 'list') {
      config[field.key] = String(value)
        .split(',')
        .map((v) => v.trim())
        .filter(Boolean)
    } else config[field.key] = String(value).trim()
  }
  return config
}

/** The form's first values: what the connection had (secrets never), else nothing. */
export function initialValues(fields: FormField[], config: Record<string, unknown>): FormValues {
  const values: FormValues = {}
  for (const field of fields) {
    const value = config[field.key]
    if (field.kind === 'secret' || value === undefined || value === null) continue
    values[field.key] =
      field.kind === 'boolean'
        ? value === true
        : Array.isArray(value)
          ? value.join(', ')
          : scalar(value)
  }
  return values
}

/** One labelled input per field, with help and the error that names it. */
export function ConfigForm({
  idPrefix,
  fields,
  values,
  errors,
  onChange,
  reconnecting,
  footer,
}: {
  idPrefix: string
  fields: FormField[]
  values: FormValues
  errors: Record<string, string>
  onChange: (key: string, value: string | boolean) => void
  reconnecting: boolean
  footer?: ReactNode
}) {
  return (
    <div className="stack-lg">
      {fields.map((field) => {
        const id = `${idPrefix}-${field.key}`
        const error = errors[field.key]
        const helpId = `${id}-help`
        const errorId = `${id}-error`
        const describedBy = [
          field.description || field.kind === 'secret' ? helpId : null,
          error ? errorId : null,
        ]
          .filter(Boolean)
          .join(' ')
        if (field.kind === 'boolean') {
          return (
            <div key={field.key} className="row">
              <input
                id={id}
                type="checkbox"
                checked={values[field.key] === true}
                onChange={(e) => onChange(field.key, e.target.checked)}
              />
              <label htmlFor={id}>{field.label}</label>
            </div>
          )
        }
        const common = {
          id,
          'aria-invalid': error ? true : undefined,
          'aria-describedby': describedBy || undefined,
          'aria-required': field.required || undefined,
        }
        return (
          <div key={field.key} className="field">
            <label htmlFor={id}>
              {field.label}
              {field.required ? (
                <span className="required-mark" aria-hidden="true">
                  *
                </span>
              ) : (
                <span className="muted"> (optional)</span>
              )}
            </label>
            {field.kind === 'select' ? (
              <select
                {...common}
                value={scalar(values[field.key] ?? field.defaultValue)}
                onChange={(e) => onChange(field.key, e.target.value)}
              >
                {(field.options ?? []).map((o) => (
                  <option key={o} value={o}>
                    {o}
                  </option>
                ))}
              </select>
            ) : (
              <input
                {...common}
                type={
                  field.kind === 'secret'
                    ? 'password'
                    : field.kind === 'number'
                      ? 'number'
                      : field.kind === 'url'
                        ? 'url'
                        : 'text'
                }
                autoComplete="off"
                spellCheck={false}
                value={String(values[field.key] ?? '')}
                placeholder={
                  field.defaultValue !== undefined && !Array.isArray(field.defaultValue)
                    ? scalar(field.defaultValue)
                    : field.kind === 'list'
                      ? 'comma-separated'
                      : undefined
                }
                onChange={(e) => onChange(field.key, e.target.value)}
              />
            )}
            {field.kind === 'secret' ? (
              <span className="help" id={helpId}>
                {reconnecting
                  ? 'Saved secrets are never shown again: enter it again to reconnect.'
                  : 'Stored encrypted; never shown again after saving.'}
              </span>
            ) : field.description ? (
              <span className="help" id={helpId}>
                {field.description}
              </span>
            ) : null}
            {error ? (
              <span className="error-text" id={errorId}>
                {error}
              </span>
            ) : null}
          </div>
        )
      })}
      {footer}
    </div>
  )
}

/** A form value or schema default as input text. */
function scalar(value: unknown): string {
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  return value === undefined || value === null ? '' : (JSON.stringify(value) ?? '')
}

/** Required fields left empty, named. */
export function missingFields(fields: FormField[], values: FormValues): Record<string, string> {
  const errors: Record<string, string> = {}
  for (const field of fields) {
    if (!field.required) continue
    const value = values[field.key]
    if (value === undefined || value === '' || value === false) {
      errors[field.key] = `${field.label} is required.`
    }
  }
  return errors
}
