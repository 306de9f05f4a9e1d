// Packs a root filesystem directory into an OCI image archive (oci-layout, index.json, blobs
// named by sha256: what `ctr images import` reads) with one layer. GNU tar makes the layer
// reproducible: sorted names, mtime 0, root-owned, nothing group/world writable.
//
//   node dist/scripts/images/oci.js ROOT-DIR NAME ENTRYPOINT USER OUT.tar   (e.g. the pause image)
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const IMAGE_TAG = 'dev';

export interface ImageConfig {
  /** Short name, e.g. idempo-sidecar; imported as docker.io/library/NAME:dev. */
  name: string;
  entrypoint: string[];
  user: string;
  workingDir?: string;
  env?: Record<string, string>;
  ports?: number[];
}

export interface PackedImage {
  name: string;
  /** The reference containerd gives it on import (kubelet normalises `NAME:dev` to this). */
  ref: string;
  archive: string;
  bytes: number;
  /** Bytes of the uncompressed layer. */
  unpackedBytes: number;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function tarDir(dir: string, file: string): void {
  execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--format=posix',
    '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime', '--mode=go-w,a+rX', '-C', dir, '-cf', file, '.']);
}

function blob(layout: string, mediaType: string, data: Buffer, annotations?: Record<string, string>) {
  const digest = sha256(data);
  writeFileSync(path.join(layout, 'blobs/sha256', digest), data);
  return { mediaType, digest: `sha256:${digest}`, size: data.length, ...(annotations ? { annotations } : {}) };
}

/**
 * How layers are compressed: zstd -12 where zstd is installed (15% smaller than gzip -9 and four
 * times faster here; containerd >= 1.5 and Docker >= 23 read it), else gzip -9.
 */
const COMPRESSOR = spawnSync('zstd', ['--version']).status === 0
  ? { cmd: 'zstd', args: ['-12', '-q', '-c'], mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' }
  : { cmd: 'gzip', args: ['-9', '-n', '-c'], mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' };

/** Packs `root` into `archive`; skips the compression when the archive holds the same layer. */
export function packImage(root: string, cfg: ImageConfig, archive: string): PackedImage {
  const ref = `docker.io/library/${cfg.name}:${IMAGE_TAG}`;
  const work = mkdtempSync(path.join(os.tmpdir(), `idempo-oci-${cfg.name}-`));
  try {
    const layerTar = path.join(work, 'layer.tar');
    tarDir(root, layerTar);
    const raw = readFileSync(layerTar);
    const diffId = `sha256:${sha256(raw)}`;
    const config = {
      created: '1970-01-01T00:00:00Z',
      architecture: 'amd64',
      os: 'linux',
      config: {
        User: cfg.user,
        Entrypoint: cfg.entrypoint,
        ...(cfg.workingDir ? { WorkingDir: cfg.workingDir } : {}),
        ...(cfg.env ? { Env: Object.entries(cfg.env).map(([k, v]) => `${k}=${v}`) } : {}),
        ...(cfg.ports ? { ExposedPorts: Object.fromEntries(cfg.ports.map((p) => [`${p}/tcp`, {}])) } : {}),
        Labels: { 'org.opencontainers.image.title': cfg.name },
      },
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created: '1970-01-01T00:00:00Z', created_by: 'idempo scripts/images/oci.ts' }],
    };
    const configBytes = Buffer.from(JSON.stringify(config));
    // Same layer and config as the archive already built: keep it (compression is most of the time).
    const stamp = `${archive}.config-sha256`;
    const stampValue = `${sha256(configBytes)} ${COMPRESSOR.mediaType}`;
    if (existsSync(archive) && existsSync(stamp) && readFileSync(stamp, 'utf8') === stampValue) {
      return { name: cfg.name, ref, archive, bytes: statSync(archive).size, unpackedBytes: raw.length };
    }
    const packed = execFileSync(COMPRESSOR.cmd, [...COMPRESSOR.args, layerTar], { maxBuffer: 1 << 30 });
    const layout = path.join(work, 'oci');
    mkdirSync(path.join(layout, 'blobs/sha256'), { recursive: true });
    const layer = blob(layout, COMPRESSOR.mediaType, packed);
    const cfgDesc = blob(layout, 'application/vnd.oci.image.config.v1+json', configBytes);
    const manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: cfgDesc, layers: [layer] };
    const man = blob(layout, 'application/vnd.oci.image.manifest.v1+json', Buffer.from(JSON.stringify(manifest)), {
      'io.containerd.image.name': ref,
      'org.opencontainers.image.ref.name': IMAGE_TAG,
    });
    writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(path.join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ ...man, platform: { architecture: 'amd64', os: 'linux' } }] }));
    mkdirSync(path.dirname(archive), { recursive: true });
    const tmp = `${archive}.tmp`;
    execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-C', layout, '-cf', tmp, 'oci-layout', 'index.json', 'blobs']);
    renameSync(tmp, archive);
    writeFileSync(stamp, stampValue);
    return { name: cfg.name, ref, archive, bytes: statSync(archive).size, unpackedBytes: raw.length };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [root, name, entrypoint, user, out] = process.argv.slice(2);
  if (!out) {
    process.stderr.write('usage: oci.js ROOT-DIR NAME ENTRYPOINT USER OUT.tar\n');
    process.exit(2);
  }
  const img = packImage(root, { name, entrypoint: [entrypoint], user }, path.resolve(out));
  process.stdout.write(`${img.ref} ${img.archive} ${img.bytes}\n`);
}
