/**
 * Messages between gateway instances: "this key was filled" (coalescing waiters), "drop
 * your L1 copy" (invalidation). LocalBus serves one instance; RedisBus
 * (src/coordination/redis.ts) uses Redis pub/sub across instances.
 */
import { EventEmitter } from 'node:events'

export interface Bus {
  publish(channel: string, message: string): Promise<void>
  /** Delivers every message on `channel`, including this instance's own. */
  subscribe(channel: string, handler: (message: string) => void): Promise<void>
  /** Called after the connection came back: messages may have been missed meanwhile. */
  onReconnect(handler: () => void): void
  close(): Promise<void>
}

export class LocalBus implements Bus {
  readonly #events = new EventEmitter()

  constructor () {
    this.#events.setMaxListeners(0)
  }

  async publish (channel: string, message: string): Promise<void> {
    this.#events.emit(channel, message)
  }

  async subscribe (channel: string, handler: (message: string) => void): Promise<void> {
    this.#events.on(channel, handler)
  }

  onReconnect (_handler: () => void): void {}

  async close (): Promise<void> {
    this.#events.removeAllListeners()
  }
}
