/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every map of the datapath, declared once. Each object file includes this header and
 * libbpf pins/re-uses the maps by name under the node's pin root, so the programs of
 * sock_lb, sockops and sk_msg share one set of maps, and a restarted agent finds its
 * state where the previous process left it. Names are prefixed and versioned: a layout
 * change gets a new name (v2) instead of libbpf refusing the old pin at load time.
 * Kernel map names stop at 15 characters.
 */
#ifndef WEFT_MAPS_H
#define WEFT_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "weft_abi.h"

/* VIP:port/proto → service entry; the one update that switches a service's backends. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct weft_svc_key);
	__type(value, struct weft_svc);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_svc_v1 SEC(".maps");

/* (service id, rev, position) → backend address and weight. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weft_rev_key);
	__type(value, struct weft_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_backend_v1 SEC(".maps");

/* (service id, rev, slot) → backend position; a backend owns as many slots as its
 * weight (scaled), so a uniform random slot is a weighted backend choice. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weft_rev_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_slot_v1 SEC(".maps");

/* Per redirected socket: original destination and opening cgroup (origin tracking,
 * getpeername). Balanced sockets use weft_peervip_v1 instead. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct weft_origin);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_sock_v1 SEC(".maps");

/*
 * getpeername() of balanced sockets: a direct-mapped cache, slot = socket cookie % size,
 * written once per connect. A per-socket sk_storage entry cost ~370 ns of a ~510 ns
 * connect4 run (allocation and memcg charge, bpf_stats on this VM) and an LRU hash
 * update more (~900 ns with the map full); an array slot is a few stores. A slot is
 * reused when a socket 2^17 cookies younger lands on it: getpeername() of the older
 * socket then shows the backend it really talks to (the cookie and backend are checked),
 * never another socket's VIP. Not shared with user space.
 */
#define WEFT_PEER_SLOTS 131072
struct weft_peer_vip {
	__u64 cookie;
	struct weft_endpoint backend;
	struct weft_endpoint vip;
	__u64 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WEFT_PEER_SLOTS);
	__type(key, __u32);
	__type(value, struct weft_peer_vip);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_peervip_v1 SEC(".maps");

/* Client endpoint → origin of a connection redirected to the agent (looked up on accept). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct weft_endpoint);
	__type(value, struct weft_origin);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_origin_v1 SEC(".maps");

/* UDP (socket, backend) → VIP, so recvmsg can make replies come from the VIP. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct weft_revnat_key);
	__type(value, struct weft_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_revnat_v1 SEC(".maps");

/* Established same-node TCP sockets that sk_msg may redirect into. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct weft_sock_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_skhash_v1 SEC(".maps");

/* Server endpoint → mean bytes per connection: is a sockmap insertion worth it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct weft_endpoint);
	__type(value, struct weft_accel);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_accel_v1 SEC(".maps");

/* Per inserted socket: bytes and messages it sent through sk_msg (TCP's counters do not
 * see them). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct weft_sock_bytes);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_sockb_v2 SEC(".maps");

/* Client sockets just inserted, by their 4-tuple: lets the server side insert its
 * socket only when the peer is a mesh socket of this node (else every send would miss). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct weft_sock_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_peer_v1 SEC(".maps");

/* Per-node settings the agent flips without reloading programs (fail mode). A map, not a
 * const volatile: the snapshot can change it at any time, and it must survive the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weft_node_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_cfg_v1 SEC(".maps");

/* This node's mesh workload addresses (their own, e.g. pod IPs in their own network
 * namespaces) → WEFT_LOCAL_F_*. Under mTLS STRICT a SYN from one of them is same-node
 * traffic (pod to pod over a veth, kernel-balanced, no mTLS hop) and passes. Written by
 * the agent whenever its local workload set changes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct weft_addr);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_local_v1 SEC(".maps");

/* Mesh workload endpoints (address and port, or port 0: any port) that a direct
 * connect, one that names the workload's address instead of a VIP, must not reach
 * unseen: connect4/6 redirect it to the agent like a redirect-mode service, so the
 * destination's authorization applies (see sock_lb.bpf.c). Written by the agent from its
 * node view (Datapath.setDirectEndpoints). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weft_direct_key);
	__type(value, struct weft_direct);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_direct_v1 SEC(".maps");

/* Index 0: the agent's outbound listening socket, inserted by the agent (the value is
 * its fd on update, its socket cookie on lookup). connect4/6 of a pod in its own
 * network namespace learn from it that the agent listens (see sock_lb.bpf.c); the
 * kernel removes a socket from a sockmap when it closes. No program is attached to it. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_agentl_v1 SEC(".maps");

/* Cgroups whose sockets weft leaves alone (see skip.h): the agent's own pod,
 * hostNetwork pods, pods opted out. Written by the agent (Datapath.setSkippedCgroups). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct weft_skip_key);
	__type(value, struct weft_skip);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_skip_v1 SEC(".maps");

/* Index 0: the number of entries in weft_skip_v1 (an array lookup the verifier inlines,
 * so an empty skip map costs the programs next to nothing). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weft_skip_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_skipn_v1 SEC(".maps");

/* Index 0: where the agent's DNS listener is and whether workloads' DNS is captured
 * (struct weft_dns_cfg, written by the agent: Datapath.setDnsCapture). A map, so the
 * agent turns capture on and off without reloading, and it outlives the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weft_dns_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_dns_v1 SEC(".maps");

/* The agent's DNS listening sockets: WEFT_DNSL_UDP and WEFT_DNSL_TCP (value: fd on update,
 * cookie on lookup). A query from a pod in its own network namespace learns from them
 * that the agent answers, as weft_agentl_v1 does for the outbound listener; the kernel
 * drops a socket from the map when it closes, and queries then go to the workload's own
 * resolver untouched. */
#define WEFT_DNSL_UDP 0
#define WEFT_DNSL_TCP 1
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_dnsl_v1 SEC(".maps");

/* Kernel-side counters: one struct weft_counters per CPU (v3: + strict_drops). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weft_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_ctrs_v3 SEC(".maps");

/* This CPU's counters; NULL never happens for index 0 but the verifier wants the check. */
static __always_inline struct weft_counters *weft_counters(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&weft_ctrs_v3, &zero);
}

/* Per-CPU copy and programs run with migration disabled: a plain add is enough. */
#define WEFT_COUNT(field, n)                                \
	do {                                                \
		struct weft_counters *__c = weft_counters(); \
		if (__c)                                     \
			__c->field += (n);                   \
	} while (0)

#endif /* WEFT_MAPS_H */
