# The two commands of the README: `make run` and `make test`. Both set up everything they need.
# `make run ARGS="--brokers 3 --instances 3"`: a local Kafka cluster, several instances of each service.
.PHONY: run test bench bench-decay chaos chaos-long simulate plan schemas rebuild clean

# uv from the PATH, else a private copy installed with the machine's Python.
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install -q uv

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python 3.11
	touch $@

run: .venv/.synced
	$(UV) run --frozen python -m infra.run $(ARGS)

test: .venv/.synced
	$(UV) run --frozen pytest

# On a stack of its own unless ARGS="--against-running" or KAFKA_BOOTSTRAP_SERVERS is set (see README, Benchmark).
bench: .venv/.synced
	$(UV) run --frozen python -m benchmarks.throughput $(ARGS)

# Throughput on a fresh stack, then with 1,000,000 orders in the stores (ARGS="--orders-in-store N": fewer).
bench-decay: .venv/.synced
	$(UV) run --frozen python -m benchmarks.decay $(ARGS)

# Faults under load, then the invariant checker (infra/chaos): the short run is also part of `make test`.
chaos: .venv/.synced
	$(UV) run --frozen python -m infra.chaos $(ARGS)

chaos-long: .venv/.synced
	$(UV) run --frozen python -m infra.chaos --orders 100000 --rate 45 --kills 60 --quiet-timeout-s 1800 $(ARGS)

simulate: .venv/.synced
	$(UV) run --frozen python -m simulation $(ARGS)

plan: .venv/.synced
	$(UV) run --frozen python -m services.plan $(ARGS)

rebuild: .venv/.synced
	$(UV) run --frozen python -m services.rebuild $(SERVICE)

schemas: .venv/.synced
	$(UV) run --frozen python -m contracts.export
	$(UV) run --frozen python -m services.runtime.docs

clean:
	rm -rf .venv .tools .local
