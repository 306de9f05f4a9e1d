// The API versions the sidecar can decode and re-encode (the generated codecs cover all of
// Kafka 4.3.1's versions). The proxy intersects these with the broker's ApiVersions ranges.

import { ApiKey } from './api.js';
import { ApiVersionsRequestVersions } from './generated/api-versions-request.js';
import { DescribeClusterRequestVersions } from './generated/describe-cluster-request.js';
import { FindCoordinatorRequestVersions } from './generated/find-coordinator-request.js';
import { InitProducerIdRequestVersions } from './generated/init-producer-id-request.js';
import { MetadataRequestVersions } from './generated/metadata-request.js';
import { ProduceRequestVersions } from './generated/produce-request.js';

export interface VersionRange {
  readonly min: number;
  readonly max: number;
}

const range = (v: { min: number; max: number }): VersionRange => Object.freeze({ min: v.min, max: v.max });

/** apiKey -> versions the sidecar decodes. APIs not listed pass through as bytes. */
export const SUPPORTED_VERSIONS: ReadonlyMap<number, VersionRange> = new Map<number, VersionRange>([
  [ApiKey.Produce, range(ProduceRequestVersions)],
  [ApiKey.Metadata, range(MetadataRequestVersions)],
  [ApiKey.FindCoordinator, range(FindCoordinatorRequestVersions)],
  [ApiKey.ApiVersions, range(ApiVersionsRequestVersions)],
  [ApiKey.InitProducerId, range(InitProducerIdRequestVersions)],
  [ApiKey.DescribeCluster, range(DescribeClusterRequestVersions)],
]);
