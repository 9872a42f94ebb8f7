#!/usr/bin/env bash
# Installs the Debian packages weft needs to build and test (idempotent; root).
# Build: clang/llvm (BPF C), libbpf-dev + libelf + zlib (native addon), bpftool.
# Runtime/tests: iproute2 (netns, veth), tcpdump (capture checks), curl, and the peers
# the tests and benchmarks run against (nginx, haproxy, wrk, h2load, nghttpd (the HTTP/2
# conformance reference), iperf3, sockperf,
# prometheus/promtool, python3-grpcio; libnginx-mod-stream for bench:mtls's nginx TLS proxies; dig (bind9-dnsutils) and
# dnsmasq (the upstream resolver) for the DNS e2e test and bench:dns). Install-artefact checks: shellcheck (vagrant/ scripts),
# ruby (evaluates vagrant/Vagrantfile against a stub of the Vagrant API), systemd
# (systemd-analyze verify checks deploy/systemd's units).
set -euo pipefail
pkgs=(clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev make g++ python3 iproute2 tcpdump curl git
      nginx haproxy wrk nghttp2-client nghttp2-server iperf3 sockperf prometheus python3-grpcio
      iptables nftables shellcheck ruby libnginx-mod-stream
      runc podman buildah debootstrap systemd bind9-dnsutils dnsmasq-base)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "all ${#pkgs[@]} packages present"
fi
# bpffs is where weft pins its maps and links.
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
