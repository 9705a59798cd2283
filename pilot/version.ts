import pkg from '../package.json' with { type: 'json' };

/** Sent in hello; the bundle carries it (esbuild inlines the JSON). */
export const PILOT_VERSION: string = pkg.version;
