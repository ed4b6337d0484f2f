/** Where main finds what the installer ships (build/electron-builder.yml puts them there). */
import path from 'node:path'

/** The built agent: out/agent beside out/main (inside the app's archive when packaged). */
export function agentEntryPath(mainDir: string): string {
  return path.join(mainDir, '..', 'agent', 'service.js')
}

/** The Temporal CLI the installer ships in resources/bin (extraResources, `to: bin`). */
export function packagedTemporalCliPath(resourcesPath: string, platform: NodeJS.Platform): string {
  return path.join(resourcesPath, 'bin', platform === 'win32' ? 'temporal.exe' : 'temporal')
}
