# idempo: every target runs with Node >= 24 (installed into ~/.cache/idempo when the machine's is older).
SHELL := /bin/bash
NODE_BIN := $(shell scripts/ensure-node.sh)
export PATH := $(NODE_BIN):$(PATH)
export IDEMPO_CACHE ?= $(HOME)/.cache/idempo

.PHONY: build deps test fuzz faults demo bench kafka-up kafka-down kube-up kube-down clean tools kafka-tools e2e-kind images cluster-up cluster-down cluster-tools

node_modules/.installed: package.json package-lock.json
	@# npm ci installs exactly the lock and never rewrites it, so a fresh clone stays clean. The lock
	@# records every platform's optional packages (rollup's, crc32's); regenerate it with `npm install`.
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

deps: node_modules/.installed

build: deps
	npx tsc -p tsconfig.json
	node dist/scripts/bundle-sidecar.js

# Real parts the tests need: a Kafka broker (Maven Central), kcat and Prometheus (Debian),
# kube-apiserver + etcd and helm (built from the Go module proxy). Each is cached in $(IDEMPO_CACHE).
tools: kafka-tools
	scripts/kube/build.sh >/dev/null
	scripts/tools/install-helm.sh >/dev/null
	$(MAKE) --no-print-directory cluster-tools

# The node's parts: kubelet, kube-proxy, controller-manager, scheduler (same Go build as the
# apiserver), containerd (go install), runc + CNI plugins + iptables (Debian), the pause binary.
cluster-tools:
	scripts/cluster/build.sh >/dev/null

# What the demo and the benchmarks need: the broker jars, kcat.
kafka-tools:
	scripts/kafka/fetch.sh >/dev/null
	scripts/tools/install-debian.sh

test: build tools
	@rm -rf test-results
	npx vitest run; status=$$?; node scripts/test-summary.mjs test-results/outcomes.json $$status; exit $$status

# The fault campaign (docs/faults.md): client x fault, seeded; SEED=1,2 CELL=client/fault RECORDS=20000 BASELINE=first.
faults: build kafka-tools
	node dist/test/faults/main.js

demo: build kafka-tools
	node dist/scripts/demo.js

bench: build kafka-tools
	node dist/bench/run.js

kafka-up:
	@scripts/kafka/up.sh

kafka-down:
	@scripts/kafka/down.sh

kube-up:
	@scripts/kube/up.sh

kube-down:
	@scripts/kube/down.sh

# A real single-node Kubernetes (needs root) with the images imported; last line KUBECONFIG=path.
cluster-up: images cluster-tools
	@scripts/cluster/up.sh

cluster-down:
	@scripts/cluster/down.sh

# idempo-sidecar and idempo-operator as OCI archives in dist/images (no Docker, no registry;
# same contents as the Dockerfile: both follow scripts/images/spec.ts).
images: build
	node dist/scripts/images/build.js

# For machines with Docker and kind (not CI): the same OCI archives loaded into kind, the chart, an injection smoke check.
e2e-kind: images
	scripts/e2e-kind.sh

clean:
	rm -rf dist test-results

# The engine's fuzz campaign at full size (make test runs 9,000 requests of it): mutated Produce
# requests on a model cluster, each followed by a valid one that must succeed. FUZZ_SEED replays.
fuzz: build
	FUZZ_ITERATIONS=$${FUZZ_ITERATIONS:-1000000} npx vitest run sidecar/engine/fuzz.test.ts
