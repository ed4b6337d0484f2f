/// <reference lib="es2024.string" />
// isWellFormed and toWellFormed are in Node 20 (engines: >=20.19); the lib is ES2023.

import { isPlainObject } from './mapping.js'

/**
 * Whether Postgres can store a string: it has no NUL (refused in text and JSON) and no lone
 * UTF-16 surrogate (refused in JSON, silently mangled in text). Native scans, no copy: most
 * strings are one-byte (Latin-1) and are well formed without a look.
 */
export function isStorableText(text: string): boolean {
  return !text.includes('\0') && text.isWellFormed()
}

/**
 * The string as Postgres can store it: each lone surrogate replaced by U+FFFD, then every NUL
 * removed (so removing a NUL never joins two halves into a character the source did not send).
 * A storable string is returned as it is.
 */
export function storableText(text: string): string {
  return isStorableText(text) ? text : text.toWellFormed().replaceAll('\0', '')
}

/**
 * A value with every string in it, keys included, made storable (see storableText), at any depth
 * of plain objects and arrays. Parts that need nothing are shared, not copied, and a value that
 * needs nothing is returned as it is; the input is never changed. A cycle is left as it is.
 */
export function storableValue(value: unknown): unknown {
  return storable(value, [])
}

/** The longest error message stored (sync_runs.error, last_sync_error, quarantine reasons). */
export const MAX_MESSAGE_LENGTH = 1000

/**
 * A message as it is stored and printed: storable text, at most `max` characters, cut with an
 * ellipsis (never between the two halves of a surrogate pair).
 */
export function boundedMessage(message: string, max = MAX_MESSAGE_LENGTH): string {
  const text = storableText(message)
  if (text.length <= max) return text
  let end = max - 1
  const last = text.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff) end -= 1
  return `${text.slice(0, end)}…`
}

function storable(value: unknown, ancestors: object[]): unknown {
  if (typeof value === 'string') return storableText(value)
  const isArray = Array.isArray(value)
  if (!isArray && !isPlainObject(value)) return value
  if (ancestors.includes(value)) return value
  ancestors.push(value)
  const copy = isArray ? storableArray(value, ancestors) : storableObject(value, ancestors)
  ancestors.pop()
  return copy
}

function storableArray(items: unknown[], ancestors: object[]): unknown[] {
  let copy: unknown[] | undefined
  for (let i = 0; i < items.length; i++) {
    const item = items[i]
    const clean = storable(item, ancestors)
    if (clean !== item) {
      copy ??= items.slice()
      copy[i] = clean
    }
  }
  return copy ?? items
}

function storableObject(
  object: Record<string, unknown>,
  ancestors: object[],
): Record<string, unknown> {
  // Entries are collected from the first change on; fromEntries keeps a "__proto__" key a key.
  let entries: Array<[string, unknown]> | undefined
  let index = 0
  for (const key in object) {
    if (!Object.hasOwn(object, key)) continue
    const item = object[key]
    const cleanKey = storableText(key)
    const clean = storable(item, ancestors)
    if (!entries && (cleanKey !== key || clean !== item)) {
      entries = Object.entries(object).slice(0, index)
    }
    entries?.push([cleanKey, clean])
    index++
  }
  return entries ? Object.fromEntries(entries) : object
}
