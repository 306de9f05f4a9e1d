import { beforeAll, describe, it } from 'vitest';
describe('a suite whose beforeAll throws', () => {
  beforeAll(() => {
    throw new Error('boom in beforeAll');
  });
  it('one', () => {});
  it('two', () => {});
  it('three', () => {});
});
