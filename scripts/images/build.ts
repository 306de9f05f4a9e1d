// make images: idempo-sidecar and idempo-operator as OCI image archives in dist/images, without
// Docker or a registry: stage.ts lays out each root filesystem from spec.ts, oci.ts packs it.
//
//   node dist/scripts/images/build.js [OUT-DIR]     (default dist/images)
// prints one line per image: NAME:TAG ARCHIVE SIZE
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IMAGE_TAG, packImage, type PackedImage } from './oci.js';
import { APP_DIR, IMAGE_ENV, IMAGE_USER, IMAGES, type ImageKey } from './spec.js';
import { repoRoot, stageImage } from './stage.js';

const repo = repoRoot;

export function buildImage(key: ImageKey, outDir: string): PackedImage {
  const spec = IMAGES[key];
  const work = mkdtempSync(path.join(os.tmpdir(), `idempo-image-${key}-`));
  try {
    const root = path.join(work, 'rootfs');
    stageImage(key, root, { repo });
    return packImage(root, { name: spec.name, entrypoint: spec.entrypoint, user: IMAGE_USER, workingDir: APP_DIR, env: IMAGE_ENV, ports: spec.ports },
      path.join(outDir, `${spec.name}.oci.tar`));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outDir = path.resolve(process.argv[2] ?? path.join(repo, 'dist/images'));
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  for (const key of Object.keys(IMAGES) as ImageKey[]) {
    const img = buildImage(key, outDir);
    process.stdout.write(`${img.name}:${IMAGE_TAG} ${img.archive} ${mb(img.bytes)} (unpacked ${mb(img.unpackedBytes)})\n`);
  }
}
