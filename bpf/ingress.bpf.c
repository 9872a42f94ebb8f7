// SPDX-License-Identifier: Apache-2.0
/*
 * MeshConfig mTLS STRICT, enforced where plaintext would arrive: packets entering a
 * socket of a mesh workload (cgroup_skb/ingress on <cg2>/weft/<node>/workloads).
 *
 * In STRICT mode a TCP SYN may reach a workload only from this node:
 *  - over loopback (the agent's inbound forwarder after it terminated mTLS, or another
 *    local workload in the same network namespace — no wire involved);
 *  - from the agent's own address (the redirect target, for workloads in their own
 *    network namespace: the agent's inbound forwarder dials them from it);
 *  - from the address of another mesh workload of this node (weft_local_v1, written by
 *    the agent from its workload registry, IPv4 and IPv6): a pod in its own network
 *    namespace reaching another pod of the node over veths, e.g. a kernel-balanced L4
 *    service whose backend is on this node (no mTLS hop, so no agent in between).
 * A SYN from any other source is a plaintext connection from outside the mesh: dropped
 * and counted (strict_drops). Only SYNs are judged, so replies to connections the
 * workload opened itself, and UDP (balanced in the kernel, never proxied), are
 * untouched. Source addresses are trusted as far as the node's network keeps them
 * honest (rp_filter, the CNI's anti-spoofing): a spoofed SYN from outside could pass,
 * but its SYN-ACK goes to the real local workload, so no connection is established
 * unless the sender is on the path.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "maps.h"

#define LOOPBACK_IFINDEX 1 /* "lo" is always ifindex 1 in its network namespace */

/* The agent's address as workloads see it (same value as sock_lb's redirect_ip4). */
const volatile __u32 agent_ip4 = 0;

/* Whether `a` is the address of a mesh workload of this node. */
static __always_inline int local_workload(struct weft_addr *a)
{
	return bpf_map_lookup_elem(&weft_local_v1, a) != NULL;
}

/* Returns 1 when the packet is a TCP SYN (without ACK); fills *src with its source. */
static __always_inline int tcp_syn(struct __sk_buff *skb, struct weft_addr *src)
{
	__u8 flags;
	__u32 off;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) || ip.protocol != IPPROTO_TCP)
			return 0;
		src->addr[0] = ip.saddr;
		src->family = WEFT_FAMILY_INET4;
		off = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		/* Extension headers before TCP are not followed: such packets pass. */
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) || ip6.nexthdr != IPPROTO_TCP)
			return 0;
		__builtin_memcpy(src->addr, &ip6.saddr, sizeof(src->addr));
		src->family = WEFT_FAMILY_INET6;
		off = sizeof(ip6);
	} else {
		return 0;
	}
	/* Byte 13 of the TCP header holds the flags (CWR ECE URG ACK PSH RST SYN FIN). */
	if (bpf_skb_load_bytes(skb, off + 13, &flags, 1))
		return 0;
	return (flags & 0x12) == 0x02;
}

SEC("cgroup_skb/ingress")
int weft_ingress(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct weft_node_cfg *cfg = bpf_map_lookup_elem(&weft_cfg_v1, &zero);
	struct weft_addr src = {};

	if (!cfg || cfg->mtls_mode != WEFT_MTLS_STRICT)
		return 1;
	if (skb->ingress_ifindex == LOOPBACK_IFINDEX || !tcp_syn(skb, &src))
		return 1;
	if (src.family == WEFT_FAMILY_INET4 && agent_ip4 && src.addr[0] == agent_ip4)
		return 1;
	if (local_workload(&src))
		return 1;
	WEFT_COUNT(strict_drops, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
