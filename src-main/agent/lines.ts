/** Feeds a stream's text chunks in and calls `onLine` once per complete line. */
export function splitLines(onLine: (line: string) => void): (chunk: string) => void {
  let buffered = ''
  return (chunk) => {
    buffered += chunk
    const lines = buffered.split('\n')
    buffered = lines.pop() ?? ''
    for (const line of lines) onLine(line)
  }
}
