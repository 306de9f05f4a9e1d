// make images: idempo-sidecar and idempo-operator as OCI image archives, without Docker or a
// registry. Each image is one layer (the root filesystem stage.ts lays out), packed with GNU
// tar so the same inputs give the same bytes (sorted names, mtime 0, root-owned), plus a
// config and a manifest named by their sha256 — the layout `ctr images import` reads.
//
//   node dist/scripts/images/build.js [OUT-DIR]     (default dist/images)
// prints one line per image: NAME ARCHIVE SIZE
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { APP_DIR, IMAGE_ENV, IMAGE_USER, IMAGES, type ImageKey } from './spec.js';
import { stageImage } from './stage.js';

export const IMAGE_TAG = 'dev';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..');

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function tar(dir: string, file: string): void {
  // Deterministic: same files, same archive. Modes keep the owner bits and make everything
  // readable (the process runs as non-root), nothing group/world writable.
  execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--format=posix',
    '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime', '--mode=go-w,a+rX', '-C', dir, '-cf', file, '.']);
}

/** Writes blob `data` under `layout` and returns its OCI descriptor. */
function blob(layout: string, mediaType: string, data: Buffer, annotations?: Record<string, string>) {
  const digest = sha256(data);
  writeFileSync(path.join(layout, 'blobs/sha256', digest), data);
  return { mediaType, digest: `sha256:${digest}`, size: data.length, ...(annotations ? { annotations } : {}) };
}

export interface BuiltImage {
  name: string;
  ref: string;
  archive: string;
  bytes: number;
  /** Bytes of the unpacked root filesystem. */
  unpackedBytes: number;
}

export function buildImage(key: ImageKey, outDir: string): BuiltImage {
  const spec = IMAGES[key];
  const work = mkdtempSync(path.join(os.tmpdir(), `idempo-image-${key}-`));
  try {
    const root = path.join(work, 'rootfs');
    stageImage(key, root, { repo });
    const layerTar = path.join(work, 'layer.tar');
    tar(root, layerTar);
    const raw = readFileSync(layerTar);
    const diffId = `sha256:${sha256(raw)}`;
    mkdirSync(outDir, { recursive: true });
    const archive = path.join(outDir, `${spec.name}.oci.tar`);
    const ref = `docker.io/library/${spec.name}:${IMAGE_TAG}`;
    // Same root filesystem as the archive already built: skip the compression (most of the time).
    const stamp = `${archive}.diffid`;
    if (existsSync(archive) && existsSync(stamp) && readFileSync(stamp, 'utf8') === diffId) {
      return { name: spec.name, ref, archive, bytes: statSync(archive).size, unpackedBytes: raw.length };
    }
    const gz = execFileSync('gzip', ['-9', '-n', '-c', layerTar], { maxBuffer: 1 << 30 });

    const layout = path.join(work, 'oci');
    mkdirSync(path.join(layout, 'blobs/sha256'), { recursive: true });
    const layer = blob(layout, 'application/vnd.oci.image.layer.v1.tar+gzip', gz);
    const config = {
      created: '1970-01-01T00:00:00Z',
      architecture: 'amd64',
      os: 'linux',
      config: {
        User: IMAGE_USER,
        Entrypoint: spec.entrypoint,
        WorkingDir: APP_DIR,
        Env: Object.entries(IMAGE_ENV).map(([k, v]) => `${k}=${v}`),
        ExposedPorts: Object.fromEntries(spec.ports.map((p) => [`${p}/tcp`, {}])),
        Labels: { 'org.opencontainers.image.title': spec.name, 'org.opencontainers.image.source': 'idempo scripts/images' },
      },
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created: '1970-01-01T00:00:00Z', created_by: 'scripts/images/build.ts' }],
    };
    const cfg = blob(layout, 'application/vnd.oci.image.config.v1+json', Buffer.from(JSON.stringify(config)));
    const manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: cfg, layers: [layer] };
    // containerd names the imported image from io.containerd.image.name; kubelet looks
    // `idempo-sidecar:dev` up as docker.io/library/idempo-sidecar:dev.
    const man = blob(layout, 'application/vnd.oci.image.manifest.v1+json', Buffer.from(JSON.stringify(manifest)), {
      'io.containerd.image.name': ref,
      'org.opencontainers.image.ref.name': IMAGE_TAG,
    });
    writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(path.join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ ...man, platform: { architecture: 'amd64', os: 'linux' } }] }));

    const tmp = `${archive}.tmp`;
    execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-C', layout, '-cf', tmp, 'oci-layout', 'index.json', 'blobs']);
    renameSync(tmp, archive);
    writeFileSync(stamp, diffId);
    return { name: spec.name, ref, archive, bytes: statSync(archive).size, unpackedBytes: raw.length };
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
