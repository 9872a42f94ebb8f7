/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The skip map: cgroups whose sockets weft leaves alone (weft_skip_v1, written by the
 * agent). A pod's containers come and go, so the agent lists the pod's cgroup and the
 * programs check the socket's cgroup and its ancestors at capture_level + 1 and + 2:
 * under kubepods a Guaranteed pod sits directly below the capture root, a Burstable or
 * BestEffort one below its QoS slice, and its containers below the pod.
 *
 * Cost: weft_skipn_v1 holds the number of entries; while it is 0 a check is one array
 * lookup (inlined by the verifier). Otherwise up to three hash lookups. Callers check
 * only where they would act (a VIP matched, a socket is about to be inserted), not on
 * every call.
 */
#ifndef WEFT_SKIP_H
#define WEFT_SKIP_H

#include <bpf/bpf_core_read.h>

#include "maps.h"

/* The level of the captured tree's root below the cgroup v2 root (the captureRoot, or
 * <cg2>/weft/<node>/workloads), set at load time (agent/datapath/datapath.ts). */
const volatile __u32 capture_level = 0;

static __always_inline int weft_skip_empty(void)
{
	__u32 zero = 0;
	struct weft_skip_state *s = bpf_map_lookup_elem(&weft_skipn_v1, &zero);

	return !s || !s->entries;
}

static __always_inline int weft_skip_has(__u64 cgroup_id)
{
	struct weft_skip_key key = { .cgroup_id = cgroup_id };

	return cgroup_id && bpf_map_lookup_elem(&weft_skip_v1, &key) != NULL;
}

/* The cgroup and both ancestor levels (an ancestor below the cgroup's own level is 0;
 * the cgroup itself at one of those levels is looked up once). */
static __always_inline int weft_skip_any(__u64 self, __u64 a1, __u64 a2)
{
	return weft_skip_has(self) || (a1 != self && weft_skip_has(a1)) ||
	       (a2 != self && weft_skip_has(a2));
}

/* sock_addr programs run in the calling task (connect, sendmsg, recvmsg, getpeername). */
static __always_inline int weft_current_skipped(void)
{
	if (weft_skip_empty())
		return 0;
	return weft_skip_any(bpf_get_current_cgroup_id(),
			     bpf_get_current_ancestor_cgroup_id(capture_level + 1),
			     bpf_get_current_ancestor_cgroup_id(capture_level + 2));
}

/* cgroup_skb: the cgroup of the socket receiving the packet. */
static __always_inline int weft_skb_skipped(struct __sk_buff *skb)
{
	if (weft_skip_empty())
		return 0;
	return weft_skip_any(bpf_skb_cgroup_id(skb), bpf_skb_ancestor_cgroup_id(skb, capture_level + 1),
			     bpf_skb_ancestor_cgroup_id(skb, capture_level + 2));
}

/*
 * sockops: the socket's own cgroup. Most sockops callbacks (ESTABLISHED on the SYN-ACK
 * or the final ACK) run in softirq, where the "current" task is whatever the CPU was
 * running, and sockops may not call bpf_sk_cgroup_id(); so the socket's cgroup is read
 * through BTF (CO-RE, the kernel's struct sock / struct cgroup), from sk_cgrp_data: the
 * cgroup that decided this program runs for the socket at all.
 */
struct kernfs_node___weft {
	__u64 id;
} __attribute__((preserve_access_index));

struct cgroup___weft {
	int level;
	struct kernfs_node___weft *kn;
	struct cgroup___weft *ancestors[0];
} __attribute__((preserve_access_index));

struct sock_cgroup_data___weft {
	struct cgroup___weft *cgroup;
} __attribute__((preserve_access_index));

struct sock___weft {
	struct sock_cgroup_data___weft sk_cgrp_data;
} __attribute__((preserve_access_index));

/* The id of cgroup `cg`'s ancestor at `level`, 0 when cg is not that deep. */
static __always_inline __u64 weft_cgroup_ancestor_id(struct cgroup___weft *cg, int cg_level, __u32 level)
{
	struct cgroup___weft *a = NULL;

	if ((int)level > cg_level)
		return 0;
	/* ancestors[] is a flexible array the verifier will not index: read it. */
	if (bpf_probe_read_kernel(&a, sizeof(a), &cg->ancestors[level]) || !a)
		return 0;
	return BPF_CORE_READ(a, kn, id);
}

static __always_inline int weft_sock_skipped(struct bpf_sock *sk)
{
	struct sock___weft *s;
	struct cgroup___weft *cg;
	int level;

	if (!sk || weft_skip_empty())
		return 0;
	s = (struct sock___weft *)bpf_skc_to_tcp_sock(sk);
	if (!s)
		return 0;
	cg = s->sk_cgrp_data.cgroup;
	if (!cg)
		return 0;
	level = cg->level;
	return weft_skip_any(cg->kn->id, weft_cgroup_ancestor_id(cg, level, capture_level + 1),
			     weft_cgroup_ancestor_id(cg, level, capture_level + 2));
}

#endif /* WEFT_SKIP_H */
