#!/usr/bin/env node
// A stand-in for a web browser, for BROWSER=…: loads the URL it is given and follows redirects
// (to the sign-in loopback among them), as a browser with a signed-in user would.
let url = process.argv[2]
for (let hops = 0; url && hops < 5; hops += 1) {
  const answer = await fetch(url, { redirect: 'manual' })
  await answer.arrayBuffer()
  const location = answer.headers.get('location')
  url = location ? new URL(location, url).toString() : undefined
}
