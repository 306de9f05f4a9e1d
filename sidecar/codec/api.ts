// API keys and header versions for every Kafka API (the table is generated from Kafka's specs).

import { API_TABLE, ApiKey, type ApiInfo } from './generated/api-table.js';

export { API_TABLE, ApiKey, type ApiInfo };

const BY_KEY: (ApiInfo | undefined)[] = [];
for (const a of API_TABLE) BY_KEY[a.key] = a;

export function apiInfo(key: number): ApiInfo | undefined {
  return BY_KEY[key];
}

/** The API's name (e.g. "Produce"), or "Unknown(<key>)" for keys Kafka 4.3.1 does not define. */
export function apiName(key: number): string {
  return BY_KEY[key]?.name ?? `Unknown(${key})`;
}

export function isFlexibleRequest(key: number, version: number): boolean {
  const f = BY_KEY[key]?.requestFlexibleFrom;
  return f !== undefined && f !== null && version >= f;
}

export function isFlexibleResponse(key: number, version: number): boolean {
  const f = BY_KEY[key]?.responseFlexibleFrom;
  return f !== undefined && f !== null && version >= f;
}

/**
 * Request header version: 2 (tagged fields) for flexible requests, else 1. Header v2 keeps
 * clientId a classic nullable string, so v1 and v2 differ only by the trailing tag section;
 * unknown keys get 1.
 */
export function requestHeaderVersion(key: number, version: number): number {
  return isFlexibleRequest(key, version) ? 2 : 1;
}

/**
 * Response header version: 1 for flexible responses, else 0 — except ApiVersions, whose
 * response header is always v0 so a client can parse it before knowing the broker's versions.
 */
export function responseHeaderVersion(key: number, version: number): number {
  if (key === ApiKey.ApiVersions) return 0;
  return isFlexibleResponse(key, version) ? 1 : 0;
}
