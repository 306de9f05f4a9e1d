// helm for the chart tests: where scripts/tools/install-helm.sh puts it (make tools), or on PATH.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../support/clients/run.js';

/** The first helm that runs. A missing helm is a failure, never a skip: make test installs it. */
export async function findHelm(): Promise<string> {
  for (const h of [join(process.env.IDEMPO_CACHE ?? join(homedir(), '.cache/idempo'), 'helm/bin/helm'), 'helm']) {
    const r = await runProcess(h, ['version', '--short']).catch(() => undefined);
    if (r?.code === 0) return h;
  }
  throw new Error('helm not found: run scripts/tools/install-helm.sh (make tools does)');
}
