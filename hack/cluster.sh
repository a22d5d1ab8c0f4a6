#!/usr/bin/env bash
# Prints a directory holding every binary of test/cluster's single-node
# cluster: kube-apiserver and etcd, kubelet, kube-proxy,
# kube-controller-manager, kube-scheduler and kubectl (all from the pinned
# k8s.io/kubernetes module, built by hack/controlplane.sh --node in one go
# build with kube-apiserver), containerd, containerd-shim-runc-v2, ctr and
# runc, and the CNI plugins in cni/. No download site for them is reachable
# here, so they are built from the Go modules pinned in hack/controlplane/ and
# hack/cluster/ the first time, then cached in bin/ under names that carry
# their versions. Each module's commands are built by one go build. Measured
# cold on a shared, busy 2-core machine (docs/testing.md): containerd
# 10 min, runc 2 min, CNI plugins 1.5 min; the Kubernetes commands together
# are the longest.
# Usage: hack/cluster.sh            build what is missing, print the directory
#        hack/cluster.sh --times    also print each build's duration on stderr
# An existing $CLUSTER_ASSETS holding every binary wins.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cluster_bins=(kube-apiserver etcd kubelet kube-proxy kube-controller-manager kube-scheduler kubectl
	containerd containerd-shim-runc-v2 ctr runc cni/bridge cni/host-local cni/loopback)

complete() { # dir
	local b
	for b in "${cluster_bins[@]}"; do [[ -x "$1/$b" ]] || return 1; done
}
if [[ -n "${CLUSTER_ASSETS:-}" ]] && complete "$CLUSTER_ASSETS"; then
	echo "$CLUSTER_ASSETS"
	exit 0
fi

times=false
[[ "${1:-}" == --times ]] && times=true
platform="$(go env GOOS)-$(go env GOARCH)"
version() { (cd "$1" && go list -m -f '{{.Version}}' "$2"); }
k8s_mod="$root/hack/controlplane/kube-apiserver"
mods="$root/hack/cluster"
k8s=$(version "$k8s_mod" k8s.io/kubernetes)
containerd=$(version "$mods/containerd" github.com/containerd/containerd/v2)
runc=$(version "$mods/runc" github.com/opencontainers/runc)
cni=$(version "$mods/cni" github.com/containernetworking/plugins)

build() { # dir module-dir "package..." [go build flags...]
	# The packages whose command is missing, in one go build: what they share
	# compiles once, and one command's link (single-threaded) overlaps with
	# the others' compiles.
	local dir=$1 mod=$2 pkgs=() p
	for p in $3; do [[ -x "$dir/${p##*/}" ]] || pkgs+=("$p"); done
	shift 3
	((${#pkgs[@]})) || return 0
	mkdir -p "$dir"
	echo "cluster: building ${pkgs[*]##*/} (first run only)" >&2
	local start=$SECONDS tmp
	tmp=$(mktemp -d "$dir/.build-XXXXXX")
	if ! (cd "$mod" && go build -o "$tmp/" "$@" "${pkgs[@]}") >&2; then
		rm -rf "$tmp"
		return 1
	fi
	for p in "${pkgs[@]}"; do
		mv "$tmp/${p##*/}" "$dir/" # a build cut short never passes for a binary
	done
	rmdir "$tmp"
	if $times; then echo "cluster: built ${pkgs[*]##*/} in $((SECONDS - start)) s" >&2; fi
}

# containerd, its runc shim and ctr. Without cgo the btrfs snapshotter (cgo
# and btrfs headers) is left out; the cluster uses overlayfs.
containerd_dir="$root/bin/containerd/containerd-$containerd-runc-$runc-$platform"
containerd_ld="-X github.com/containerd/containerd/v2/version.Version=$containerd"
CGO_ENABLED=0 build "$containerd_dir" "$mods/containerd" "$(printf 'github.com/containerd/containerd/v2/cmd/%s ' containerd containerd-shim-runc-v2 ctr)" -ldflags "$containerd_ld"
# runc needs cgo (its nsenter is C) and libseccomp's headers for the seccomp
# tag: pods with seccompProfile RuntimeDefault (the chart's) need seccomp.
# Its libpathrs tag (a Rust library) is left out.
# The cluster tier runs as root, so on Debian (this project's machines and
# CI) the headers are installed from Debian's packages when missing.
if [[ ! -x "$containerd_dir/runc" ]] && ! pkg-config --exists libseccomp 2>/dev/null; then
	if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
		echo "cluster: installing libseccomp-dev and pkg-config for runc's seccomp support" >&2
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libseccomp-dev pkg-config) >&2
	fi
	if ! pkg-config --exists libseccomp 2>/dev/null; then
		echo "cluster: runc needs libseccomp's headers and pkg-config (Debian/Ubuntu: apt-get install libseccomp-dev pkg-config; Fedora: dnf install libseccomp-devel pkgconf)" >&2
		exit 1
	fi
fi
CGO_ENABLED=1 build "$containerd_dir" "$mods/runc" github.com/opencontainers/runc -tags "seccomp urfave_cli_no_docs"

cni_dir="$root/bin/cni/plugins-$cni-$platform"
CGO_ENABLED=0 build "$cni_dir" "$mods/cni" "$(printf 'github.com/containernetworking/plugins/plugins/%s ' main/bridge ipam/host-local main/loopback)"

# kube-apiserver and etcd come from hack/controlplane.sh, which builds the
# node's components (same module, same flags) in the same go build as
# kube-apiserver when that is missing too.
k8s_dir="$root/bin/k8s/node-$k8s-$platform"
start=$SECONDS
controlplane=$("$root/hack/controlplane.sh" --node "$k8s_dir")
if $times; then echo "cluster: kube-apiserver, etcd and the node's components ready in $((SECONDS - start)) s" >&2; fi
# kube-proxy programs Services' cluster IPs (nftables mode) with the nft
# command. The cluster tier runs as root, so on Debian it is installed from
# Debian's packages when missing, as runc's libseccomp-dev is above.
if ! command -v nft >/dev/null; then
	if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
		echo "cluster: installing nftables (the nft command) for kube-proxy" >&2
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nftables) >&2
	fi
	if ! command -v nft >/dev/null; then
		echo "cluster: kube-proxy's nftables mode needs the nft command (Debian/Ubuntu: apt-get install nftables; Fedora: dnf install nftables)" >&2
		exit 1
	fi
fi

# One directory of links, keyed by every version, is what the tests use.
dir="$root/bin/cluster/k8s-$k8s-containerd-$containerd-runc-$runc-cni-$cni-$platform"
mkdir -p "$dir"
link() { ln -sfn "$1" "$dir/$2"; }
for c in kube-apiserver etcd; do link "$controlplane/$c" "$c"; done
for c in kubelet kube-proxy kube-controller-manager kube-scheduler kubectl; do link "$k8s_dir/$c" "$c"; done
for c in containerd containerd-shim-runc-v2 ctr runc; do link "$containerd_dir/$c" "$c"; done
link "$cni_dir" cni
complete "$dir" || { echo "cluster: $dir is incomplete" >&2; exit 1; }
echo "$dir"
