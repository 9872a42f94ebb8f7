/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SOCKHASH keys from a sockops or sk_msg context. Both contexts expose the same field
 * names with the same odd byte orders: local_port is host order, remote_port is the
 * network-order port in the upper 16 bits. Keys store both ports in network order (as
 * every other weft map does), so a socket's key and its peer's mirrored key match.
 */
#ifndef WEFT_SOCK_KEY_H
#define WEFT_SOCK_KEY_H

#include <linux/errno.h>
#include <linux/socket.h>
#include <bpf/bpf_endian.h>

#include "weft_abi.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* Whether an IPv6 address (4 words, network order) is v4-mapped (::ffff:a.b.c.d). */
#define WEFT_V4MAPPED(a) (!(a)[0] && !(a)[1] && (a)[2] == bpf_htonl(0xffff))

/* A macro, not a function: struct bpf_sock_ops and struct sk_msg_md are different
 * types with the same field names. Evaluates to 0, or -EAFNOSUPPORT.
 * An IPv6 socket connected to a v4-mapped address talks IPv4 (its IPv4 fields hold
 * both ends): its key is the IPv4 one, as its peer (an IPv4 socket, or a dual-stack
 * one that accepted it) sees it, and as connect6 recorded its destination. */
#define WEFT_SOCK_KEY(ctx, key, mirrored)                                              \
	({                                                                             \
		int __err = 0;                                                         \
		__u32 *__l = (mirrored) ? (key)->remote_addr : (key)->local_addr;      \
		__u32 *__r = (mirrored) ? (key)->local_addr : (key)->remote_addr;      \
		__u16 __lp = bpf_htons((__u16)(ctx)->local_port);                      \
		__u16 __rp = (__u16)((ctx)->remote_port >> 16);                        \
		if ((ctx)->family == AF_INET) {                                        \
			__l[0] = (ctx)->local_ip4;                                     \
			__r[0] = (ctx)->remote_ip4;                                    \
			(key)->family = WEFT_FAMILY_INET4;                             \
		} else if ((ctx)->family == AF_INET6 && WEFT_V4MAPPED((ctx)->remote_ip6)) { \
			__l[0] = (ctx)->local_ip4;                                     \
			__r[0] = (ctx)->remote_ip4;                                    \
			(key)->family = WEFT_FAMILY_INET4;                             \
		} else if ((ctx)->family == AF_INET6) {                                \
			__l[0] = (ctx)->local_ip6[0];                                  \
			__l[1] = (ctx)->local_ip6[1];                                  \
			__l[2] = (ctx)->local_ip6[2];                                  \
			__l[3] = (ctx)->local_ip6[3];                                  \
			__r[0] = (ctx)->remote_ip6[0];                                 \
			__r[1] = (ctx)->remote_ip6[1];                                 \
			__r[2] = (ctx)->remote_ip6[2];                                 \
			__r[3] = (ctx)->remote_ip6[3];                                 \
			(key)->family = WEFT_FAMILY_INET6;                             \
		} else {                                                               \
			__err = -EAFNOSUPPORT;                                         \
		}                                                                      \
		(key)->local_port = (mirrored) ? __rp : __lp;                          \
		(key)->remote_port = (mirrored) ? __lp : __rp;                         \
		__err;                                                                 \
	})

#endif /* WEFT_SOCK_KEY_H */
