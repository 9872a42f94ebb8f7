// SPDX-License-Identifier: Apache-2.0
/*
 * Same-node acceleration: a message sent on a socket in the SOCKHASH goes straight into
 * the receive queue of its peer socket (BPF_F_INGRESS), skipping the TCP/IP stack, when
 * sockops has inserted the peer too. Otherwise it takes the normal path (a miss).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"
#include "sock_key.h"

SEC("sk_msg")
int weft_sk_msg(struct sk_msg_md *msg)
{
	struct weft_sock_key peer = {};
	__u32 size = msg->size;

	/* The peer's key is ours mirrored: its local end is our remote end. */
	if (WEFT_SOCK_KEY(msg, &peer, 1))
		return SK_PASS;
	if (bpf_msg_redirect_hash(msg, &weft_skhash_v1, &peer, BPF_F_INGRESS) != SK_PASS) {
		WEFT_COUNT(msg_miss, 1);
		return SK_PASS;
	}
	WEFT_COUNT(msg_redirected, 1);
	WEFT_COUNT(msg_redirected_bytes, size);
	/* Inserted sockets count what they send for sockops' per-endpoint means. */
	if (msg->sk) {
		struct weft_sock_bytes *sent = bpf_sk_storage_get(&weft_sockb_v2, msg->sk, 0, 0);

		if (sent) {
			sent->bytes += size;
			sent->msgs++;
		}
	}
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
