export { DEFAULT_SERVER_LIMITS, startServer, type ServeOptions, type ServerHandle, type ServerLimits } from './server.js'
export { gearsReply, type ServerGears } from './rg-commands.js'
