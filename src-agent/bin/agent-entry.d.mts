export declare const SOURCE_ENTRY: URL
export declare const BUILT_ENTRY: URL
export declare const BUILD_STAMP: URL

export interface AgentChoice {
  from: 'source' | 'build'
  /** The module that exports runAgentProcess. */
  entry: URL
  why: string
}

export declare function chooseAgent(env?: Record<string, string | undefined>): AgentChoice
export declare function buildTime(): number | undefined
export declare function newestSource(): number
