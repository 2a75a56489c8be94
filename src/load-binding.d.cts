import type * as Binding from '../binding'
/** The package root (where `default-implementation` may live). */
export declare const root: string
export declare const binding: typeof Binding | null
/** Why the binding did not load ('' when it did). */
export declare const loadError: string
