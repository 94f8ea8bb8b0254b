/**
 * Background work (refreshes, store writes, invalidations) registers here so that tests and
 * shutdown can await it instead of sleeping. A task's failure is reported, never thrown.
 */
export class Tasks {
  readonly #running = new Set<Promise<void>>()
  readonly #onError: (name: string, err: unknown) => void

  constructor (onError: (name: string, err: unknown) => void = () => undefined) {
    this.#onError = onError
  }

  run (name: string, fn: () => Promise<unknown>): void {
    const p: Promise<void> = (async () => {
      try {
        await fn()
      } catch (err) {
        this.#onError(name, err)
      }
    })().finally(() => this.#running.delete(p))
    this.#running.add(p)
  }

  get size (): number {
    return this.#running.size
  }

  /** Resolves when every task, including tasks started meanwhile, has finished. */
  async settled (): Promise<void> {
    while (this.#running.size > 0) await Promise.all([...this.#running])
  }
}
