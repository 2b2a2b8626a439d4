# changehub developer entry points. `make test` is the test command.

SHELL := bash
.DEFAULT_GOAL := test

VENV        := .venv
VENV_DEPLOY := .venv-deploy

.PHONY: test serve lint-template validate-template build-lambdas

## Run every test: cargo tests (AWS adapters against a local moto server) and cfn-lint.
test:
	bash tests/run.sh

## Run the local all-in-one hub (`changehub serve`).
serve:
	cargo run --release -p changehub-local --bin changehub -- serve

## Lint template.yaml with cfn-lint (from the test venv).
lint-template:
	bash tests/venv.sh $(VENV) tests/requirements.txt
	$(VENV)/bin/cfn-lint template.yaml

## Validate template.yaml with SAM's own validator (from the deploy venv; no AWS call).
validate-template:
	bash tests/venv.sh $(VENV_DEPLOY) infra/requirements-deploy.txt
	PATH="$(CURDIR)/$(VENV_DEPLOY)/bin:$$PATH" SAM_CLI_TELEMETRY=0 \
		sam validate --lint --region us-east-1

## Cross-compile the Lambda functions (cargo-lambda + zig, arm64) into .aws-sam/build.
build-lambdas:
	bash tests/venv.sh $(VENV_DEPLOY) infra/requirements-deploy.txt
	PATH="$(CURDIR)/$(VENV_DEPLOY)/bin:$$PATH" SAM_CLI_TELEMETRY=0 \
		sam build --beta-features
