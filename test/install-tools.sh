#!/usr/bin/env bash
# Installs the real registry clients the end-to-end tests drive. Idempotent.
#   crane  : go install (version pinned to go.mod's go-containerregistry)
#   versitygw: go install, pinned; the S3-compatible server of the s3 backend's integration tests
#   fake-gcs-server: go install, pinned; the GCS emulator of the gcs backend's integration tests
#   distribution-registry: distribution's `registry` binary (go install, pinned), renamed so it is
#     not mistaken for Shoal's; the upstream of the registry backend's integration tests
#   skopeo : Debian package
#   busybox: Debian's busybox-static, the static binary of the tiny image docker runs
set -euo pipefail
tools=${1:?usage: install-tools.sh TOOLS_DIR}
mkdir -p "$tools"

if [ ! -x "$tools/crane" ]; then
	ver=$(go list -m -f '{{.Version}}' github.com/google/go-containerregistry)
	echo "installing crane $ver"
	GOBIN="$tools" CGO_ENABLED=0 go install "github.com/google/go-containerregistry/cmd/crane@$ver"
fi

versitygw_ver=v1.8.0
if [ ! -x "$tools/versitygw" ]; then
	echo "installing versitygw $versitygw_ver"
	GOBIN="$tools" CGO_ENABLED=0 go install "github.com/versity/versitygw/cmd/versitygw@$versitygw_ver"
fi

fake_gcs_ver=v1.56.1
if [ ! -x "$tools/fake-gcs-server" ]; then
	echo "installing fake-gcs-server $fake_gcs_ver"
	GOBIN="$tools" CGO_ENABLED=0 go install "github.com/fsouza/fake-gcs-server@$fake_gcs_ver"
fi

distribution_ver=v3.1.2
if [ ! -x "$tools/distribution-registry" ]; then
	echo "installing distribution registry $distribution_ver (a few minutes cold)"
	tmp=$(mktemp -d)
	GOBIN="$tmp" CGO_ENABLED=0 go install "github.com/distribution/distribution/v3/cmd/registry@$distribution_ver"
	mv "$tmp/registry" "$tools/distribution-registry"
	rmdir "$tmp"
fi

missing=()
command -v skopeo >/dev/null || missing+=(skopeo)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "need root to apt-get install ${missing[*]} (or install them yourself)" >&2
		exit 1
	fi
	echo "installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
