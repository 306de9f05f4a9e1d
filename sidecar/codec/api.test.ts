import { describe, expect, test } from 'vitest';
import { API_TABLE, ApiKey, apiInfo, apiName, isFlexibleRequest, requestHeaderVersion, responseHeaderVersion } from './api.js';
import { SUPPORTED_VERSIONS } from './supported.js';

describe('api table', () => {
  test('has every Kafka API with its key', () => {
    expect(ApiKey.Produce).toBe(0);
    expect(ApiKey.Metadata).toBe(3);
    expect(ApiKey.FindCoordinator).toBe(10);
    expect(ApiKey.ApiVersions).toBe(18);
    expect(ApiKey.InitProducerId).toBe(22);
    expect(ApiKey.DescribeCluster).toBe(60);
    expect(API_TABLE.length).toBeGreaterThan(80);
    expect(apiName(0)).toBe('Produce');
    expect(apiName(9999)).toBe('Unknown(9999)');
    expect(apiInfo(0)).toMatchObject({ minVersion: 3, maxVersion: 13, requestFlexibleFrom: 9, responseFlexibleFrom: 9 });
    expect(apiInfo(ApiKey.LeaderAndIsr)).toMatchObject({ minVersion: -1, maxVersion: -1 });
  });

  test('header versions', () => {
    expect(requestHeaderVersion(ApiKey.Produce, 8)).toBe(1);
    expect(requestHeaderVersion(ApiKey.Produce, 9)).toBe(2);
    expect(responseHeaderVersion(ApiKey.Produce, 8)).toBe(0);
    expect(responseHeaderVersion(ApiKey.Produce, 9)).toBe(1);
    expect(requestHeaderVersion(ApiKey.ApiVersions, 3)).toBe(2);
    expect(responseHeaderVersion(ApiKey.ApiVersions, 3)).toBe(0); // always v0
    expect(responseHeaderVersion(ApiKey.ApiVersions, 4)).toBe(0);
    expect(requestHeaderVersion(ApiKey.DescribeCluster, 0)).toBe(2);
    expect(requestHeaderVersion(ApiKey.Metadata, 8)).toBe(1);
    expect(requestHeaderVersion(ApiKey.Metadata, 9)).toBe(2);
    expect(requestHeaderVersion(4321, 0)).toBe(1);
    expect(responseHeaderVersion(4321, 0)).toBe(0);
    expect(isFlexibleRequest(ApiKey.InitProducerId, 2)).toBe(true);
    expect(isFlexibleRequest(ApiKey.InitProducerId, 1)).toBe(false);
  });
});

describe('supported versions', () => {
  test('cover the decoded APIs', () => {
    expect(SUPPORTED_VERSIONS.get(ApiKey.Produce)).toEqual({ min: 3, max: 13 });
    expect(SUPPORTED_VERSIONS.get(ApiKey.Metadata)).toEqual({ min: 0, max: 13 });
    expect(SUPPORTED_VERSIONS.get(ApiKey.ApiVersions)).toEqual({ min: 0, max: 4 });
    expect(SUPPORTED_VERSIONS.get(ApiKey.InitProducerId)).toEqual({ min: 0, max: 6 });
    expect(SUPPORTED_VERSIONS.get(ApiKey.Fetch)).toBeUndefined();
    expect([...SUPPORTED_VERSIONS.keys()].sort((a, b) => a - b)).toEqual([0, 3, 10, 18, 22, 60]);
  });
});
