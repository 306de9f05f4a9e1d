import { afterAll, beforeAll, describe, expect, it } from 'vitest';
describe('mixed', () => {
  it('passes', () => {});
  it.skip('is skipped', () => {});
  it.todo('is todo');
  it('fails', () => {
    expect(1).toBe(2);
  });
  describe('inner suite whose beforeAll throws', () => {
    beforeAll(() => {
      throw new Error('inner boom');
    });
    it('never runs', () => {});
  });
  describe('inner suite whose afterAll throws', () => {
    afterAll(() => {
      throw new Error('boom in afterAll');
    });
    it('passes before it', () => {});
  });
});
