/**
 * Sets `key` as a key of `target`'s own. Plain assignment of `__proto__` would set the prototype
 * instead of the key; every other key is assigned.
 */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    })
  } else {
    target[key] = value
  }
}
