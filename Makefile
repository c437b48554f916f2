# provtrail build and test entry points. `make test` is what CI runs.
GO        ?= go
STATICCHECK_VERSION ?= v0.8.2
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
GOBIN     ?= $(shell $(GO) env GOPATH)/bin
# Packages the test suite needs on a fresh Debian machine (real servers and tools).
APT_PACKAGES ?= slapd ldap-utils passwd login sudo logrotate auditd systemd util-linux

.PHONY: all build test test-deps lint unit bench fuzz clean

all: build

# TAGS=kms_gcp,kms_azure links Google Cloud KMS and Azure Key Vault for
# key_ref identity keys (about 27 MB more; Vault and AWS KMS are always in).
TAGS ?=

build:
	$(GO) build -trimpath -tags "$(TAGS)" -ldflags "$(LDFLAGS)" -o provtrail ./cmd/provtrail

# test installs what the tests need, then runs formatting, vet, staticcheck,
# the whole suite with the race detector, and the package install test.
# Tests that need a real server fail instead of skipping
# (PROVTRAIL_TESTENV_REQUIRED=1).
test: test-deps lint unit package-test

test-deps:
	./scripts/install-test-deps.sh $(APT_PACKAGES)
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags kms_gcp,kms_azure ./cmd/provtrail
	$(GOBIN)/staticcheck ./...

unit:
	PROVTRAIL_TESTENV_REQUIRED=1 $(GO) test -race -timeout 30m ./...

bench:
	./bench/run.sh

fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 20s $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -f provtrail

.PHONY: packages package-test

# packages builds the .deb and .rpm packages (provtrail, provtrail-agent,
# provtrail-central) into dist/packages with nfpm (a pinned tool, not in go.mod).
packages:
	./packaging/build.sh

# package-test builds the packages, installs them with dpkg (needs root),
# checks owners, modes, units and the shipped configs, then purges them.
package-test:
	./packaging/test.sh
