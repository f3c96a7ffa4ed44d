/** Worker side: makes the engine a job names (loads that engine's code). */
import type { EngineFactory, EngineName } from '../engine.js'
import { newMicroPythonEngine } from './micropython/engine.js'
import { newQuickJSEngine } from './quickjs/engine.js'

const FACTORIES: { readonly [E in EngineName]: EngineFactory } = { quickjs: newQuickJSEngine, micropython: newMicroPythonEngine }

export function engineFactory(name: EngineName): EngineFactory {
  return FACTORIES[name]
}
