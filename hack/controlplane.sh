#!/usr/bin/env bash
# Prints a directory holding the kube-apiserver and etcd binaries that envtest
# (the tests, 'make run', 'make bench') starts. No download site for them is
# reachable here, so they are built from the Go modules pinned in
# hack/controlplane/ the first time (about 5 minutes on 2 cores each), then
# cached in bin/k8s/ under a name that carries both versions.
# Usage: hack/controlplane.sh            the newest supported kube-apiserver
#                                        (hack/controlplane/kube-apiserver);
#                                        an existing $KUBEBUILDER_ASSETS with
#                                        both binaries wins
#        hack/controlplane.sh --oldest   the oldest one the docs claim
#                                        (hack/controlplane/kube-apiserver-oldest);
#                                        $KUBEBUILDER_ASSETS_OLDEST wins
set -euo pipefail

kas_mod=kube-apiserver
assets=${KUBEBUILDER_ASSETS:-}
if [[ "${1:-}" == --oldest ]]; then
	kas_mod=kube-apiserver-oldest
	assets=${KUBEBUILDER_ASSETS_OLDEST:-}
fi
if [[ -n "$assets" && -x "$assets/kube-apiserver" && -x "$assets/etcd" ]]; then
	echo "$assets"
	exit 0
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mods="$root/hack/controlplane"
version() { (cd "$mods/$1" && go list -m -f '{{.Version}}' "$2"); }
kas=$(version "$kas_mod" k8s.io/kubernetes)
etcd=$(version etcd go.etcd.io/etcd/server/v3)
dir="$root/bin/k8s/kube-apiserver-$kas-etcd-$etcd-$(go env GOOS)-$(go env GOARCH)"
mkdir -p "$dir"

build() { # name module package [ldflags]
	[[ -x "$dir/$1" ]] && return 0
	echo "controlplane: building $1 from $3 (first run only)" >&2
	(cd "$mods/$2" && go build -o "$dir/$1.partial" -ldflags "${4:-}" "$3") >&2
	mv "$dir/$1.partial" "$dir/$1" # a build cut short never passes for a binary
}
build etcd etcd go.etcd.io/etcd/server/v3
# Unstamped, kube-apiserver reports v0.0.0-master+$Format:%H$, which
# version-parsing clients reject.
build kube-apiserver "$kas_mod" k8s.io/kubernetes/cmd/kube-apiserver "-X k8s.io/component-base/version.gitVersion=$kas"
echo "$dir"
