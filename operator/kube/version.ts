// What the API server supports, for choices the operator makes once at start.
import type { Logger } from 'pino';
import type { KubeClient } from './client.js';

/**
 * Whether pods may carry native sidecars (init containers with restartPolicy: Always, on by
 * default from Kubernetes 1.29). --native-sidecars true|false decides; auto asks the server.
 */
export async function nativeSidecarsSupported(client: KubeClient, setting: 'auto' | 'true' | 'false', log: Logger): Promise<boolean> {
  if (setting !== 'auto') return setting === 'true';
  try {
    const v = await client.get<{ major?: string; minor?: string }>('/version');
    const minor = parseInt(v.minor ?? '0', 10);
    return Number(v.major) > 1 || minor >= 29;
  } catch (e) {
    log.warn({ err: String(e) }, 'could not read the server version; assuming native sidecars are supported');
    return true;
  }
}
