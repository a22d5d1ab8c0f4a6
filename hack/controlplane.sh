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
#        hack/controlplane.sh --node DIR the newest, and also the node's
#                                        components (kubelet, kube-proxy,
#                                        kube-controller-manager,
#                                        kube-scheduler, kubectl) into DIR,
#                                        in one go build with kube-apiserver
#                                        when that is missing too
#                                        (hack/cluster.sh)
set -euo pipefail

kas_mod=kube-apiserver
assets=${KUBEBUILDER_ASSETS:-}
node_dir=
node=(kubelet kube-proxy kube-controller-manager kube-scheduler kubectl)
case "${1:-}" in
--oldest)
	kas_mod=kube-apiserver-oldest
	assets=${KUBEBUILDER_ASSETS_OLDEST:-}
	;;
--node)
	node_dir=${2:?--node needs a directory}
	;;
esac
given=false
if [[ -n "$assets" && -x "$assets/kube-apiserver" && -x "$assets/etcd" ]]; then
	[[ -n "$node_dir" ]] || { echo "$assets" && exit 0; }
	given=true # the node's components are still built below
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mods="$root/hack/controlplane"
version() { (cd "$mods/$1" && go list -m -f '{{.Version}}' "$2"); }
kas=$(version "$kas_mod" k8s.io/kubernetes)
etcd=$(version etcd go.etcd.io/etcd/server/v3)
dir="$root/bin/k8s/kube-apiserver-$kas-etcd-$etcd-$(go env GOOS)-$(go env GOARCH)"
if $given; then dir=$assets; fi
mkdir -p "$dir"

build() { # name module package [ldflags]
	[[ -x "$dir/$1" ]] && return 0
	echo "controlplane: building $1 from $3 (first run only)" >&2
	(cd "$mods/$2" && go build -o "$dir/$1.partial" -ldflags "${4:-}" "$3") >&2
	mv "$dir/$1.partial" "$dir/$1" # a build cut short never passes for a binary
}
build etcd etcd go.etcd.io/etcd/server/v3

# The k8s.io/kubernetes commands that are missing, built by one go build: the
# packages they share compile once, and one command's link (single-threaded)
# overlaps with the others' compiles. Each lands where it is cached:
# kube-apiserver in $dir, the node's components in $node_dir.
declare -A dest=([kube-apiserver]=$dir)
for c in "${node[@]}"; do [[ -z "$node_dir" ]] || dest[$c]=$node_dir; done
pkgs=()
for c in "${!dest[@]}"; do
	[[ -x "${dest[$c]}/$c" ]] || pkgs+=("k8s.io/kubernetes/cmd/$c")
done
if ((${#pkgs[@]})); then
	echo "controlplane: building ${pkgs[*]##*/} from k8s.io/kubernetes $kas in one go build (first run only)" >&2
	start=$SECONDS
	tmp=$(mktemp -d "$root/bin/k8s/.build-XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	# Unstamped, kube-apiserver reports v0.0.0-master+$Format:%H$, which
	# version-parsing clients reject.
	(cd "$mods/$kas_mod" && go build -o "$tmp/" -ldflags "-X k8s.io/component-base/version.gitVersion=$kas" "${pkgs[@]}") >&2
	for p in "${pkgs[@]}"; do
		c=${p##*/}
		mkdir -p "${dest[$c]}"
		mv "$tmp/$c" "${dest[$c]}/$c" # a build cut short never passes for a binary
	done
	echo "controlplane: built ${pkgs[*]##*/} in $((SECONDS - start)) s" >&2
fi
echo "$dir"
