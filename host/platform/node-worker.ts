/** Entry of a Node sandbox worker thread: hands parentPort to the sandbox worker loop. */
import { parentPort, workerData } from 'node:worker_threads'
import type { ToWorkerMessage } from '../sandbox/protocol.js'
import { runSandboxWorker } from '../sandbox/worker-loop.js'
import { directRedisCalls } from './direct-redis.js'
import type { NodeWorkerData } from './node.js'

const port = parentPort
if (port === null) throw new Error('node-worker.js must run in a worker thread (see nodePlatform())')

runSandboxWorker(
  {
    postMessage: (message) => port.postMessage(message),
    onMessage: (listener) => port.on('message', (message: ToWorkerMessage) => listener(message)),
  },
  (workerData as NodeWorkerData).wasmModule,
  directRedisCalls,
)
