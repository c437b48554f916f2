#!/bin/sh
# Builds the provtrail .deb and .rpm packages (make packages):
#   provtrail           /usr/bin/provtrail and the provtrail system account
#   provtrail-agent     the agent's unit, example config, state dir
#   provtrail-central   central's unit, example config, state dir
# into dist/packages/. nfpm is run as a pinned tool, not a module dependency.
#
# Environment: PROVTRAIL_VERSION (default: from git), GOARCH (default: the
# host's), FORMATS (default: "deb rpm"), DIST (default: dist/packages).
set -eu
cd "$(dirname "$0")/.."
NFPM_VERSION=v2.45.2
GO=${GO:-go}
DIST=${DIST:-dist/packages}
FORMATS=${FORMATS:-deb rpm}
GOARCH=${GOARCH:-$($GO env GOARCH)}

commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# Package versions must start with a digit and sort upwards: a release tag
# vX.Y.Z gives X.Y.Z; anything else 0.0.0~gitYYYYMMDDhhmmss.SHORT ('~' sorts
# before the release it leads up to, in dpkg and rpm alike).
if [ -z "${PROVTRAIL_VERSION:-}" ]; then
	if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
		PROVTRAIL_VERSION=${tag#v}
	elif ts=$(git show -s --format=%cd --date=format-local:%Y%m%d%H%M%S HEAD 2>/dev/null); then
		PROVTRAIL_VERSION=0.0.0~git$ts.$(git rev-parse --short=12 HEAD)
	else
		PROVTRAIL_VERSION=0.0.0~dev
	fi
fi
case "$PROVTRAIL_VERSION" in
[0-9]*) ;;
*) echo "build.sh: PROVTRAIL_VERSION=$PROVTRAIL_VERSION must start with a digit" >&2; exit 2 ;;
esac
# Reproducible archives: file times are the commit's.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git show -s --format=%ct HEAD 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH

for f in configs/agent.hcl configs/central.hcl docs/operations.md; do
	[ -f "$f" ] || { echo "build.sh: $f is missing" >&2; exit 1; }
done

# A fixed place: nfpm does not expand variables in script paths.
work=dist/.packaging
rm -rf "$work"
mkdir -p "$DIST" "$work/bin" "$work/scripts" "$work/tools"

echo "== building provtrail $PROVTRAIL_VERSION for linux/$GOARCH"
CGO_ENABLED=0 GOOS=linux GOARCH=$GOARCH $GO build -trimpath -buildvcs=false \
	-ldflags "-s -w -X main.version=$PROVTRAIL_VERSION -X main.commit=$commit" \
	-o "$work/bin/provtrail" ./cmd/provtrail

# The tool is built for the host, whatever GOARCH the packages are for.
tooldir=$(cd "$work/tools" && pwd)
if ! nfpm_bin=$(command -v nfpm) || [ "$(nfpm --version 2>/dev/null | awk '/GitVersion/ {print $2}')" != "${NFPM_VERSION#v}" ]; then
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/provtrail-tools/nfpm-$NFPM_VERSION
	if [ ! -x "$cache/nfpm" ]; then
		echo "== installing nfpm $NFPM_VERSION (pinned tool, not in go.mod)"
		mkdir -p "$cache"
		GOOS= GOARCH= GOBIN="$cache" $GO install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION"
	fi
	nfpm_bin=$cache/nfpm
fi
cp "$nfpm_bin" "$tooldir/nfpm"

for unit in provtrail-agent provtrail-central; do
	case $unit in
	provtrail-agent) conf=agent.hcl state=/var/lib/provtrail ;;
	provtrail-central) conf=central.hcl state=/var/lib/provtrail-central ;;
	esac
	for hook in postinstall preremove postremove; do
		sed -e "s|@UNIT@|$unit|g" -e "s|@CONF@|$conf|g" -e "s|@STATE@|$state|g" -e "s|@HOOK@|$hook|g" \
			packaging/scripts/daemon.sh.in >"$work/scripts/$unit-$hook.sh"
	done
done

export PROVTRAIL_VERSION PROVTRAIL_ARCH="$GOARCH"
export PROVTRAIL_BIN="$work/bin/provtrail"
for pkg in provtrail provtrail-agent provtrail-central; do
	for format in $FORMATS; do
		if ! out=$("$tooldir/nfpm" package --config "packaging/nfpm/$pkg.yaml" --packager "$format" --target "$DIST/" 2>&1); then
			echo "$out" >&2
			echo "build.sh: nfpm failed on packaging/nfpm/$pkg.yaml ($format)" >&2
			exit 1
		fi
	done
done
rm -rf "$work"
echo "== packages in $DIST:"
ls -1 "$DIST" | grep -E "_${PROVTRAIL_VERSION}-1_|-${PROVTRAIL_VERSION}-1\." | sed 's/^/   /'
