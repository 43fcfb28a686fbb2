# The two commands a newcomer needs (see README.md):
#   make dev    run the system locally (no Cloudflare account needed)
#   make test   run every check and test CI runs
# Both install what they need first, into .cache/ (ignored by git).

PYTHON ?= python3
VENV_PY := .cache/venv/bin/python

.PHONY: dev test bootstrap

bootstrap:
	@$(PYTHON) scripts/bootstrap.py --chromium

# `make dev CONTAINERS=1`: the Worker's production path, the real sandbox image under podman.
dev:
	@$(PYTHON) scripts/bootstrap.py --chromium $(if $(CONTAINERS),--containers)
	@$(VENV_PY) -m devstack $(if $(CONTAINERS),--containers)

# The suite builds and boots the real sandbox image, so it also needs podman and its helpers.
test:
	@$(PYTHON) scripts/bootstrap.py --chromium --containers
	@$(VENV_PY) scripts/check.py
