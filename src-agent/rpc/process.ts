/** The desktop agent process's entry: what utilityProcess.fork (and, in tests, Node's fork) runs. */
import { runAgentServiceProcess } from './main.js'

await runAgentServiceProcess()
