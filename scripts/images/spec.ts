// The one definition of what goes into the idempo images and how they start. Both ways of
// building them read it: `make images` (scripts/images/build.ts, OCI archives, no Docker)
// and the Dockerfile (its build stage runs scripts/images/stage.ts; a test checks that its
// ENTRYPOINT/USER/EXPOSE lines match this file).

/** Where the Node binary sits in both images (the same path distroless images use). */
export const NODE_PATH = '/nodejs/bin/node';
/** The application's root in the images; the working directory. */
export const APP_DIR = '/app';
/** uid:gid of the process: distroless' "nonroot", also what the webhook and chart set. */
export const IMAGE_USER = '65532:65532';
/**
 * Environment of both images. One malloc arena instead of one per thread: less resident memory
 * under load and no more CPU; no transparent huge pages for the native modules' own mimalloc (a
 * 2 MiB page each for a few KiB used). docs/benchmarks.md; bin/idempo-sidecar sets the same.
 */
export const IMAGE_ENV: Record<string, string> = { PATH: '/nodejs/bin', NODE_ENV: 'production', MALLOC_ARENA_MAX: '1', MIMALLOC_ALLOW_THP: '0' };

/**
 * V8 flags of the sidecar, wherever it runs: this image, bin/idempo-sidecar and the tests' sidecars
 * (a test checks that the Dockerfile and bin/idempo-sidecar say the same). Why each: bin/idempo-sidecar.
 */
export const SIDECAR_NODE_FLAGS = ['--max-semi-space-size=2', '--initial-old-space-size=16', '--heap-growing-percent=50', '--single-threaded-gc', '--no-maglev', '--invocation-count-for-turbofan=600', '--no-lazy-feedback-allocation', '--no-allocation-site-pretenuring'];

export interface ImageSpec {
  /** Image name (tag `dev` locally). */
  name: string;
  /** Compiled directories under dist/ the entry point may load (tests, maps, bench excluded). */
  distDirs: string[];
  /** Full ENTRYPOINT, in exec form. */
  entrypoint: string[];
  /** Ports the process listens on by default (documentation: EXPOSE). */
  ports: number[];
}

export const IMAGES = {
  sidecar: {
    name: 'idempo-sidecar',
    distDirs: ['api', 'sidecar'],
    entrypoint: [NODE_PATH, ...SIDECAR_NODE_FLAGS, 'dist/sidecar/main.cjs'],
    ports: [19092, 9464],
  },
  operator: {
    name: 'idempo-operator',
    distDirs: ['api', 'operator'],
    entrypoint: [NODE_PATH, 'dist/operator/main.js'],
    ports: [9443, 8080],
  },
} satisfies Record<string, ImageSpec>;

export type ImageKey = keyof typeof IMAGES;

/** Files never copied into an image: type declarations, source maps, docs, tests. */
export const EXCLUDE = [/\.d\.[cm]?ts$/, /\.map$/, /\.tsbuildinfo$/, /\.test\.js$/, /(^|\/)(README|CHANGELOG|HISTORY)(\.[a-z]+)?$/i, /\.md$/i, /(^|\/)\.[^/]+$/];
