// SPDX-License-Identifier: Apache-2.0
/*
 * MeshConfig mTLS STRICT, enforced where plaintext would arrive: packets entering a
 * socket of a mesh workload (cgroup_skb/ingress on <cg2>/weft/<node>/workloads).
 *
 * In STRICT mode a TCP SYN may reach a workload only from this node: over loopback
 * (the agent's inbound forwarder after it terminated mTLS, or another local workload —
 * no wire involved) or from the agent's own address (the redirect target, for
 * workloads in their own network namespace). A SYN from any other interface is a
 * plaintext connection from outside the mesh: dropped. Only SYNs are judged, so
 * replies to connections the workload opened itself, and UDP (balanced in the kernel,
 * never proxied), are untouched.
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

/* Returns 1 when the packet is a TCP SYN (without ACK); sets *from_agent. */
static __always_inline int tcp_syn(struct __sk_buff *skb, int *from_agent)
{
	__u8 flags;
	__u32 off;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) || ip.protocol != IPPROTO_TCP)
			return 0;
		*from_agent = agent_ip4 && ip.saddr == agent_ip4;
		off = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		/* Extension headers before TCP are not followed: such packets pass. */
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) || ip6.nexthdr != IPPROTO_TCP)
			return 0;
		*from_agent = 0;
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
	int from_agent = 0;

	if (!cfg || cfg->mtls_mode != WEFT_MTLS_STRICT)
		return 1;
	if (skb->ingress_ifindex == LOOPBACK_IFINDEX || !tcp_syn(skb, &from_agent) || from_agent)
		return 1;
	WEFT_COUNT(strict_drops, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
