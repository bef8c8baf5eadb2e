#!/usr/bin/env bash
# Build the real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl) from their Go modules, into a cache outside the repository:
#
#   hack/kube/build.sh [VERSION]      # VERSION: v1.37.2 (default, the pinned newest) or v1.34.4
#
# Output: ${MODELDEPLOY_KUBE_CACHE:-~/.cache/modeldeploy/kube}/VERSION/{etcd,kube-apiserver,...}.
# A finished build is reused while its go.mod/go.sum stay the same. A cold build takes minutes on
# two cores (kube-apiserver about 3): each binary is announced, then its compiled package count.
set -euo pipefail

version="${1:-v1.37.2}"
here="$(cd "$(dirname "$0")" && pwd)"
minor="$(echo "$version" | sed -E 's/^(v[0-9]+\.[0-9]+)\..*$/\1/')"
module="$here/$minor"
if [ ! -f "$module/go.mod" ] || ! grep -qE "^[[:space:]]*(require )?k8s.io/kubernetes $version( |$)" "$module/go.mod"; then
  echo "hack/kube/build.sh: no Go module pins k8s.io/kubernetes $version (looked in $module/go.mod)" >&2
  exit 2
fi
if ! command -v go >/dev/null 2>&1; then
  echo "hack/kube/build.sh: Go is needed to build the control plane (https://go.dev/dl/); 'go' is not on PATH" >&2
  exit 2
fi

out="${MODELDEPLOY_KUBE_CACHE:-$HOME/.cache/modeldeploy/kube}/$version"
stamp="$out/.built-from"
want="$(cat "$module/go.mod" "$module/go.sum" "$module/etcd/main.go" "$0" | sha256sum | cut -d' ' -f1)"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "Kubernetes $version: reusing the binaries in $out"
  exit 0
fi

mkdir -p "$out"
rm -f "$stamp"
# The version the binaries report (/version, kubectl version) is stamped as upstream's release does.
major="${version#v}"; major="${major%%.*}"
minor_number="$(echo "$version" | cut -d. -f2)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor_number"
  ldflags="$ldflags -X $pkg.gitTreeState=clean"
done

cd "$module"
echo "Kubernetes $version: building ${binaries[*]} into $out (cold: several minutes on 2 cores)"
started=$SECONDS
index=0
for binary in "${binaries[@]}"; do
  index=$((index + 1))
  case "$binary" in
    etcd) package=./etcd ;;
    kubectl) package=k8s.io/kubernetes/cmd/kubectl ;;
    *) package="k8s.io/kubernetes/cmd/$binary" ;;
  esac
  step_started=$SECONDS
  echo "[$index/${#binaries[@]}] $binary ..."
  # -v names each package as it is compiled (cached ones are not named): count them for progress.
  if ! go build -v -trimpath -ldflags "$ldflags" -o "$out/$binary.tmp" "$package" 2>&1 \
      | awk -v name="$binary" '
          /^(#|go: |.*\.go:[0-9]+)/ { print; next }
          { n++; if (n % 250 == 0) { printf "      %s: %d packages compiled\n", name, n; fflush() } }'; then
    echo "hack/kube/build.sh: building $binary ($package) failed" >&2
    exit 1
  fi
  mv "$out/$binary.tmp" "$out/$binary"
  echo "      $binary done in $((SECONDS - step_started))s"
done
echo "$want" > "$stamp"
echo "Kubernetes $version: built in $((SECONDS - started))s"
