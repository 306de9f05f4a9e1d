import { it } from 'vitest';
// @ts-expect-error: the module does not exist; loading this file fails
import { missing } from './no-such-module.js';
it('cannot be collected', () => missing());
