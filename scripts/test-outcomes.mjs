// A vitest reporter that records every test's outcome for scripts/test-summary.mjs, counted the
// way CI must count: a test that never ran because its file or suite broke (a beforeAll that
// threw, an import that failed) is a failure, not a skip. Vitest's own JSON report marks those
// tests "skipped", which is why this exists. Writes test-results/outcomes.json, or the
// reporter option `outputFile`.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';


/** Errors a suite or file raised itself (hooks, collection), not its tests'. */
const ownErrors = (entity) => (entity.task.result?.errors ?? []).map((e) => e.message ?? String(e));

export default class TestOutcomes {
  constructor(options = {}) {
    this.outputFile = options.outputFile ?? 'test-results/outcomes.json';
  }

  onTestRunEnd(modules, unhandledErrors) {
    const tests = [];
    const broken = []; // suites/files whose own error made no test fail: each counts once
    for (const m of modules) {
      const file = relative(process.cwd(), m.moduleId);
      const containers = [m, ...m.children.allSuites()];
      const erroredBy = new Map(containers.map((c) => [c, ownErrors(c)]));
      const blamed = new Set();
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        let outcome = state === 'passed' ? 'passed' : state === 'failed' ? 'failed' : 'skipped';
        let why;
        if (outcome !== 'passed' && outcome !== 'failed') {
          // The nearest enclosing suite (or the file) that broke, if any.
          for (let p = t.parent; p; p = p.type === 'module' ? undefined : p.parent) {
            if (erroredBy.get(p)?.length && t.options.mode === 'run') {
              outcome = 'failed';
              why = `not run: ${erroredBy.get(p)[0]}`;
              blamed.add(p);
              break;
            }
          }
        }
        tests.push({ file, name: t.fullName, outcome, ...(why ? { why } : {}) });
      }
      for (const c of containers) {
        const errs = erroredBy.get(c);
        if (errs.length && !blamed.has(c)) broken.push({ file, name: c.type === 'module' ? '(file)' : c.fullName, why: errs[0] });
      }
    }
    mkdirSync(dirname(this.outputFile), { recursive: true });
    writeFileSync(this.outputFile, JSON.stringify({ tests, broken, unhandled: unhandledErrors.map((e) => e.message ?? String(e)) }, null, 1));
  }
}
