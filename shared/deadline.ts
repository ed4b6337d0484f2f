/** A wait that ran out before the work it waited for answered. */
export class DeadlineExceeded extends Error {
  constructor(ms: number, message?: string) {
    super(message ?? `no answer within ${ms / 1000} s`)
  }
}

/**
 * `promise`, or a DeadlineExceeded (with `message`, when given) once `ms` have passed; the work
 * itself is left to end on its own.
 */
export async function withDeadline<T>(
  promise: Promise<T>,
  ms: number,
  message?: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DeadlineExceeded(ms, message)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}
