# The two commands of the README:
#   make demo   bring up a local control plane (when no KUBECONFIG is given) and play the demo
#   make test   everything CI runs: install, build the test control plane, quality gates, tests
# Both set themselves up on a fresh machine; nothing needs to be installed by hand first.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SOURCES := operator tests benchmarks

.PHONY: test demo install controlplane lint crds check-crds unit integration bench clean e2e-chart-rbac

$(VENV)/.installed: pyproject.toml
	@echo "==> installing the package and its test tools into $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

install: $(VENV)/.installed

controlplane:
	@echo "==> building the test control plane from Go modules (skipped when present)"
	hack/controlplane/build.sh

crds: install
	$(BIN)/python -m identity_risk.api.crdgen
	cp crds/*.yaml charts/identity-risk/crds/

lint: install
	@echo "==> quality gates: ruff, ruff format, mypy --strict, import contracts, CRDs in sync"
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy operator
	$(BIN)/lint-imports
	$(BIN)/python -m identity_risk.api.crdgen --check

unit: install
	$(BIN)/pytest tests/unit

integration: install controlplane
	$(BIN)/pytest -m integration

# The chart-RBAC pass runs first so that the whole suite's summary is the last line printed.
test: install controlplane lint
	$(MAKE) e2e-chart-rbac
	@echo "==> tests (unit, property-based, scenarios, integration and e2e on the real control plane)"
	IDENTITY_RISK_REQUIRE_CONTROLPLANE=1 $(BIN)/pytest

# The end-to-end suite again, the operator authenticated as the Helm chart's ServiceAccount: the
# chart's RBAC is sufficient (nothing refused) and minimal (every rule used).
e2e-chart-rbac: install controlplane
	@echo "==> end-to-end as the chart's ServiceAccount (RBAC sufficient and minimal)"
	IDENTITY_RISK_REQUIRE_CONTROLPLANE=1 IDENTITY_RISK_E2E_AS_CHART_SA=1 $(BIN)/pytest tests/e2e

demo: install controlplane
	$(BIN)/identity-risk demo

bench: install
	$(BIN)/python benchmarks/pipeline.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
