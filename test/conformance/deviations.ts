/**
 * Deliberate deviations from the http-tests cache-tests suite: tests cachegate fails on
 * purpose, each with its reason, per configuration. The conformance test fails when a required
 * test fails without an entry here, so a new failure is either fixed or argued for.
 */
export type ConfigurationName = 'minimal' | 'shipped'

export const CONFIGURATIONS: readonly ConfigurationName[] = ['minimal', 'shipped']

/** The one reason accepted for a required failure with the shipped routes.yaml. */
export const STALE_WINDOWS = 'route stale windows serve a response that had positive freshness'

export interface Deviation {
  id: string
  configurations: ConfigurationName[]
  reason: string
}

export const DEVIATIONS: Deviation[] = []
