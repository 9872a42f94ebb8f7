// SPDX-License-Identifier: Apache-2.0
/*
 * MeshConfig mTLS STRICT, enforced where plaintext would arrive: packets entering a
 * socket of a mesh workload (cgroup_skb/ingress on <cg2>/weft/<node>/workloads, or on
 * the capture root, e.g. kubepods.slice; sockets of skipped cgroups pass, see skip.h).
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
 * untouched. IPv6 extension headers before TCP are walked (a bounded walk); a packet
 * for a TCP socket whose TCP header the walk does not reach (too long a chain, a
 * header it cannot skip, truncated) is dropped too, whatever its source: it cannot be
 * told apart from a SYN. Source addresses are trusted as far as the node's network keeps them
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
#include "skip.h"

#define LOOPBACK_IFINDEX 1 /* "lo" is always ifindex 1 in its network namespace */

/* The agent's address as workloads see it (same value as sock_lb's redirect_ip4). */
const volatile __u32 agent_ip4 = 0;

/* Whether `a` is the address of a mesh workload of this node. */
static __always_inline int local_workload(struct weft_addr *a)
{
	return bpf_map_lookup_elem(&weft_local_v1, a) != NULL;
}

/* What tcp_syn() found. */
#define WEFT_PKT_OTHER 0     /* not a TCP SYN: pass */
#define WEFT_PKT_SYN 1       /* a TCP SYN (without ACK): judge its source */
#define WEFT_PKT_UNPARSED 2  /* a TCP socket's packet whose TCP header was not found */

/* IPv6 extension headers walked before giving up (RFC 8200 expects at most one of
 * each, destination options twice: 6 covers a well-formed chain). */
#define WEFT_IPV6_MAX_EXT 6

#ifndef IPPROTO_HOPOPTS
#define IPPROTO_HOPOPTS 0
#endif
#ifndef IPPROTO_ROUTING
#define IPPROTO_ROUTING 43
#endif
#ifndef IPPROTO_FRAGMENT
#define IPPROTO_FRAGMENT 44
#endif
#ifndef IPPROTO_DSTOPTS
#define IPPROTO_DSTOPTS 60
#endif

/*
 * Where the TCP header of an IPv6 packet starts, behind its extension headers:
 * Hop-by-Hop, Routing and Destination Options are (hdrlen + 1) * 8 bytes, AH
 * (hdrlen + 2) * 4, a Fragment header 8 (only a first fragment carries the TCP header:
 * the kernel reassembles before a socket sees anything, so a later one is never a
 * SYN we could read; it counts as unparsed). Returns the offset, or -1 when the chain
 * does not reach TCP within WEFT_IPV6_MAX_EXT headers, is truncated, or names a
 * header we do not know how to skip.
 */
static __always_inline int ipv6_tcp_offset(struct __sk_buff *skb, __u8 nexthdr)
{
	__u32 off = sizeof(struct ipv6hdr);
	__u8 ext[2];
	__u16 frag;
	int i;

	for (i = 0; i < WEFT_IPV6_MAX_EXT; i++) {
		if (nexthdr == IPPROTO_TCP)
			return off;
		if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)))
			return -1;
		switch (nexthdr) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
			off += ((__u32)ext[1] + 1) * 8;
			break;
		case IPPROTO_AH:
			off += ((__u32)ext[1] + 2) * 4;
			break;
		case IPPROTO_FRAGMENT:
			if (bpf_skb_load_bytes(skb, off + 2, &frag, sizeof(frag)))
				return -1;
			if (bpf_ntohs(frag) & 0xfff8) /* fragment offset: no TCP header here */
				return -1;
			off += 8;
			break;
		default:
			return -1;
		}
		nexthdr = ext[0];
	}
	return nexthdr == IPPROTO_TCP ? (int)off : -1;
}

/*
 * Whether the packet is a TCP SYN (without ACK), and its source in *src. Only packets
 * for TCP sockets are judged (the kernel delivered the packet to the socket this hook
 * runs for, so the socket's protocol is the packet's): anything else passes, and a TCP
 * socket's packet whose TCP header cannot be found is WEFT_PKT_UNPARSED.
 */
static __always_inline int tcp_syn(struct __sk_buff *skb, struct weft_addr *src)
{
	struct bpf_sock *sk = skb->sk;
	__u8 flags;
	int off;

	if (!sk)
		return WEFT_PKT_OTHER;
	/* Request and time-wait sockets (not full) are TCP's only. */
	sk = bpf_sk_fullsock(sk);
	if (sk && sk->protocol != IPPROTO_TCP)
		return WEFT_PKT_OTHER;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) || ip.protocol != IPPROTO_TCP || ip.ihl < 5)
			return WEFT_PKT_UNPARSED;
		src->addr[0] = ip.saddr;
		src->family = WEFT_FAMILY_INET4;
		off = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return WEFT_PKT_UNPARSED;
		__builtin_memcpy(src->addr, &ip6.saddr, sizeof(src->addr));
		src->family = WEFT_FAMILY_INET6;
		off = ipv6_tcp_offset(skb, ip6.nexthdr);
		if (off < 0)
			return WEFT_PKT_UNPARSED;
	} else {
		return WEFT_PKT_OTHER;
	}
	/* Byte 13 of the TCP header holds the flags (CWR ECE URG ACK PSH RST SYN FIN). */
	if (bpf_skb_load_bytes(skb, off + 13, &flags, 1))
		return WEFT_PKT_UNPARSED;
	return (flags & 0x12) == 0x02 ? WEFT_PKT_SYN : WEFT_PKT_OTHER;
}

SEC("cgroup_skb/ingress")
int weft_ingress(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct weft_node_cfg *cfg = bpf_map_lookup_elem(&weft_cfg_v1, &zero);
	struct weft_addr src = {};

	if (!cfg || cfg->mtls_mode != WEFT_MTLS_STRICT)
		return 1;
	if (skb->ingress_ifindex == LOOPBACK_IFINDEX)
		return 1;
	switch (tcp_syn(skb, &src)) {
	case WEFT_PKT_OTHER:
		return 1;
	case WEFT_PKT_SYN:
		if (src.family == WEFT_FAMILY_INET4 && agent_ip4 && src.addr[0] == agent_ip4)
			return 1;
		if (local_workload(&src))
			return 1;
		break;
	default:
		/* A TCP packet whose header we cannot find could be a SYN: fail closed. */
		break;
	}
	/* A skipped cgroup's socket (a hostNetwork pod, the agent's own) is not a mesh
	 * workload: weft leaves it alone. Checked only before a drop. */
	if (weft_skb_skipped(skb))
		return 1;
	WEFT_COUNT(strict_drops, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
