# Offline checks of the SAM stack (template.yaml), run by `make test`.
#
#   make infra-check   cfn-lint, sam validate --lint, sam build (no Docker), the build check, checkov
#   make sam-build     just the build, into .aws-sam/build
#   make sam-venv      aws-sam-cli in its own virtualenv (.venv-sam): it pins boto3 and click, so it stays
#                      out of .venv
#
# Nothing here talks to AWS or prompts: SAM_CLI_TELEMETRY=0, standard input closed, checkov without its
# platform download.

SAM_VENV ?= .venv-sam
SAM_CLI_VERSION ?= 1.170.0
SAM := $(SAM_VENV)/bin/sam
SAM_ENV := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-eu-central-1}
SAM_BUILD_DIR := .aws-sam/build

# The layer's bytecode is compiled by CPython 3.13, the Lambda runtime's version (layers/deps/Makefile).
# With pyenv, 3.13 is added to the active versions for the build; the build check then requires the
# bytecode. Without any python3.13 the layer builds without it, and the check says so.
PYENV_313 = $(shell pyenv versions --bare 2>/dev/null | grep -E '^3\.13(\.[0-9]+)?$$' | tail -n 1)
PYENV_ACTIVE = $(shell pyenv version-name 2>/dev/null)
SAM_BUILD_PYENV = $(if $(and $(PYENV_313),$(PYENV_ACTIVE)),PYENV_VERSION=$(PYENV_ACTIVE):$(PYENV_313))
HAVE_PY313 = $(shell $(SAM_BUILD_PYENV) python3.13 -c 'import sys; print(sys.version_info[:2] == (3, 13))' 2>/dev/null)
BYTECODE_CHECK = $(if $(filter True,$(HAVE_PY313)),--require-bytecode)

.PHONY: infra-check sam-venv sam-build

$(SAM_VENV)/.installed: mk/infra.mk
	rm -rf $(SAM_VENV)
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check 'aws-sam-cli==$(SAM_CLI_VERSION)'
	touch $@

sam-venv: $(SAM_VENV)/.installed

sam-build: $(SAM_VENV)/.installed
	$(SAM_BUILD_PYENV) $(SAM_ENV) \
		$(SAM) build --template-file template.yaml --build-dir $(SAM_BUILD_DIR) --build-in-source \
		< /dev/null

infra-check: $(BIN)/.installed $(SAM_VENV)/.installed
	@echo "== cfn-lint"
	$(BIN)/cfn-lint template.yaml
	@echo "== sam validate --lint"
	$(SAM_ENV) $(SAM) validate --lint --template-file template.yaml < /dev/null
	@echo "== sam build"
	$(MAKE) --no-print-directory sam-build
	$(BIN)/python tests/deploy/check_build.py $(SAM_BUILD_DIR) $(BYTECODE_CHECK)
	@echo "== checkov"
	$(BIN)/checkov --file template.yaml --framework cloudformation --quiet --compact --skip-download
