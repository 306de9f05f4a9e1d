// The two ways of building the images agree: the Dockerfile's final stages say exactly what
// scripts/images/spec.ts says (entry point, user, working dir, env, ports), and the root
// filesystem stage.ts lays out — what both `make images` and the Dockerfile ship — runs
// each binary as the non-root user with nothing but that tree (chroot, no Docker here).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { APP_DIR, IMAGE_ENV, IMAGE_USER, IMAGES, NODE_PATH, SIDECAR_NODE_FLAGS, type ImageKey } from '../../scripts/images/spec.js';
import { bareImports, stageImage } from '../../scripts/images/stage.js';
import { repoRoot } from '../support/clients/java.js';
import { output } from '../support/clients/run.js';

/** Instructions of each named stage of a Dockerfile: stage -> [[INSTRUCTION, args]]. */
function dockerStages(text: string): Map<string, Array<[string, string]>> {
  const stages = new Map<string, Array<[string, string]>>();
  let current: Array<[string, string]> | undefined;
  const joined = text.replace(/\\\n/g, ' ');
  for (const raw of joined.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [, instr, args] = /^(\S+)\s+(.*)$/.exec(line) ?? [];
    if (instr.toUpperCase() === 'FROM') {
      const m = /\bAS\s+(\S+)$/i.exec(args);
      current = [];
      if (m) stages.set(m[1], current);
      continue;
    }
    current?.push([instr.toUpperCase(), args]);
  }
  return stages;
}

describe('images', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'idempo-images-test-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('the Dockerfile final stages match scripts/images/spec.ts', () => {
    const stages = dockerStages(readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8'));
    for (const [key, spec] of Object.entries(IMAGES)) {
      const stage = stages.get(key);
      expect(stage, `Dockerfile stage ${key}`).toBeDefined();
      const one = (instr: string) => stage!.filter(([i]) => i === instr).map(([, a]) => a);
      expect(one('ENTRYPOINT').map((a) => JSON.parse(a))).toEqual([spec.entrypoint]);
      expect(one('USER')).toEqual([IMAGE_USER]);
      expect(one('WORKDIR')).toEqual([APP_DIR]);
      expect(one('EXPOSE')).toEqual([spec.ports.join(' ')]);
      expect(one('ENV')).toEqual([Object.entries(IMAGE_ENV).map(([k, v]) => `${k}=${v}`).join(' ')]);
      // The whole root filesystem is what stage.ts laid out for this image, nothing else.
      expect(one('COPY')).toEqual([`--from=build /out/${key} /`]);
    }
    const build = stages.get('build')!.filter(([i]) => i === 'RUN').map(([, a]) => a).join(' ');
    for (const key of Object.keys(IMAGES)) expect(build).toContain(`node dist/scripts/images/stage.js ${key} /out/${key}`);
  });

  it('bin/idempo-sidecar starts Node with the image V8 flags', () => {
    const exec = readFileSync(path.join(repoRoot, 'bin/idempo-sidecar'), 'utf8').split('\n').find((l) => l.startsWith('exec '));
    const flags = exec?.split(/\s+/).filter((w) => w.startsWith('--'));
    expect(flags).toEqual(SIDECAR_NODE_FLAGS);
    expect(IMAGES.sidecar.entrypoint.slice(1, -1)).toEqual(SIDECAR_NODE_FLAGS);
  });

  it('finds the packages compiled code imports', () => {
    const js = [
      "import { pino } from 'pino';",
      "import x from '@kubernetes/client-node/dist/gen/index.js';",
      "import './local.js'; import fs from 'node:fs'; import path from 'path';",
      "const m = await import('yaml'); const r = require('ajv');",
      "const crc = () => requireCjs('@node-rs/crc32');",
    ].join('\n');
    expect(bareImports(js).sort()).toEqual(['@kubernetes/client-node', '@node-rs/crc32', 'ajv', 'pino', 'yaml']);
  });

  for (const key of Object.keys(IMAGES) as ImageKey[]) {
    it(`${key}: the staged root filesystem runs as ${IMAGE_USER} on its own`, async () => {
      const root = path.join(tmp, key);
      const r = stageImage(key, root, { repo: repoRoot });
      expect(existsSync(path.join(root, NODE_PATH))).toBe(true);
      expect(r.libs.some((l) => l.includes('ld-linux'))).toBe(true);
      // No declarations, maps or tests shipped; nothing writable by the process.
      const files: string[] = [];
      const walk = (d: string) => {
        for (const e of readdirSync(d, { withFileTypes: true })) {
          const p = path.join(d, e.name);
          if (e.isDirectory()) walk(p);
          else files.push(p);
        }
      };
      walk(root);
      expect(files.filter((f) => /\.(d\.ts|map)$|\.test\.js$/.test(f))).toEqual([]);
      expect(files.filter((f) => (statSync(f).mode & 0o022) !== 0)).toEqual([]);
      // Only this image's code: the sidecar carries no Kubernetes client, the operator no proxy.
      const other = key === 'sidecar' ? 'operator' : 'sidecar';
      expect(existsSync(path.join(root, APP_DIR, 'dist', other))).toBe(false);
      if (key === 'sidecar') expect(r.packages.some((p) => p.includes('@kubernetes'))).toBe(false);
      // What the sidecar loads on first use only (--help never does): the addons, the YAML parser.
      if (key === 'sidecar') for (const pkg of ['@node-rs/crc32', '@node-rs/xxhash', 'yaml']) expect(r.packages).toContain(`node_modules/${pkg}`);

      // chroot into the tree as the image's user: the entry point starts and answers --help.
      const [uid, gid] = IMAGE_USER.split(':');
      const [node, ...args] = IMAGES[key].entrypoint;
      const out = await output('/usr/sbin/chroot', [`--userspec=${uid}:${gid}`, root, node, ...args.map((a) => (a.startsWith('dist/') ? `${APP_DIR}/${a}` : a)), '--help'], {
        env: { PATH: IMAGE_ENV.PATH },
      });
      expect(out).toContain(`usage: ${IMAGES[key].name}`);
    });
  }
});
