/** Pure PID/epoch/sequence logic of the sidecar (no I/O, no timers). See README.md in this folder. */
export * from './sequence.js';
export * from './errors.js';
export * from './session-table.js';
export * from './sequencer.js';
export * from './dedup.js';
