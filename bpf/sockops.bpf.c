// SPDX-License-Identifier: Apache-2.0
/*
 * TCP socket events of every process in the node's cgroup (agent and workloads):
 * - a connection redirected to the agent gets its origin published under the client's
 *   endpoint before the SYN leaves, so the agent can always find it on accept;
 * - established same-node sockets that are worth it go into the SOCKHASH for sk_msg.
 * Sockets of a cgroup in the skip map (skip.h) are neither inserted nor measured; they
 * are never redirected either (connect4/6 check the map), so they publish no origin.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "maps.h"
#include "skip.h"
#include "sock_key.h"

/* The agent's outbound listener port (network order): its accepted sockets drop the
 * origin entry of their client when they close. */
const volatile __u16 redirect_port = 0;

/*
 * When a socket is worth a SOCKHASH insertion. Insertion is not free: a psock is
 * allocated, the socket's proto ops are swapped and restored at close, and every
 * sendmsg runs sk_msg. Chatty and long connections pay that back (64 B ping-pong
 * 1.15x, nginx keep-alive 1.20x in perf-baselines.md), but inserting every socket cost
 * connection-per-request traffic (wrk → nginx, `Connection: close`) 0.84x of plain
 * loopback, and a socket whose peer is not in the map (a server outside the mesh or on
 * another node) pays sk_msg on every send for nothing. So, per connection:
 * - the server endpoint must carry, on average, at least accel_min_bytes per
 *   connection: every server-side mesh socket of this node updates its endpoint's
 *   weighted mean (1/8) when it closes, with TCP's byte counts, or for an inserted
 *   socket the bytes it sent through sk_msg. The mean follows the traffic both ways: a
 *   server whose clients switch from keep-alive to one request per connection stops
 *   being inserted after a few connections. The agent can also pin an endpoint
 *   (WEFT_ACCEL_PINNED), or mark it eager (WEFT_ACCEL_EAGER): inserted from the first
 *   connection, before any mean is learned, and still left on TCP once its writes are
 *   learned to be bulk. The agent marks its own hops eager: its outbound listener (an
 *   L7 hop costs the agent far more than an insertion, so even one request per
 *   connection pays it back) and the local endpoints of the services it proxies (its
 *   pooled, keep-alive upstream connections are opened before anything is learned and
 *   live long). Measuring on the server side also
 *   proves the server is local and in the mesh.
 * - the client inserts itself at ACTIVE_ESTABLISHED and leaves its 4-tuple in
 *   weft_peer_v1; the server side, whose PASSIVE_ESTABLISHED always runs after (the
 *   client's callback precedes its ACK), inserts only if it finds that entry, i.e. only
 *   when its peer is a mesh socket that sk_msg can redirect to.
 * The figures behind the default threshold are next to DEFAULT_ACCEL_MIN_BYTES in
 * agent/datapath/datapath.ts (measured with npm run bench:l4).
 */
const volatile __u64 accel_min_bytes = 65536;

/*
 * Bulk streams are not inserted: an endpoint whose writes average at least
 * accel_bulk_msg_bytes (per TCP data segment on a plain connection, per sk_msg message
 * on an inserted one) stays on plain TCP. Two measurements behind it (npm run bench:l4
 * and iperf3 A/B runs on this 2-vCPU VM, kernel 6.18; figures next to
 * DEFAULT_ACCEL_BULK_MSG_BYTES in agent/datapath/datapath.ts):
 * - loopback TCP moves 64 KiB segments, so bulk is bound by the two copies (user to
 *   kernel, kernel to user) that sk_msg makes as well; what sk_msg saves is per-packet
 *   work, which only dominates for small writes. Redirected bulk cost more CPU per byte
 *   than plain TCP (page and sk_msg allocation per message) and ran slower.
 * - the redirect itself serializes writer and reader: bpf_tcp_ingress() takes the
 *   receiving socket's lock to queue each message, and tcp_bpf_recvmsg() holds that
 *   lock while it copies to user space. A sched_switch profile of iperf3 with 32 KiB
 *   writes puts the sender to sleep in tcp_bpf_sendmsg_redir -> lock_sock_nested while
 *   the reader copies; both ran at ~45 % CPU and 0.5x plain throughput. Plain TCP
 *   never waits there (a busy receiver gets the segment on its backlog).
 * - BPF_F_INGRESS queues into the peer's psock with no receive-buffer limit (the
 *   kernel charges only the global TCP memory), so a reader slower than its writer
 *   queued 460-690 MB against an sk_rcvbuf of 128-512 KiB, with no backpressure. The
 *   sk_msg program cannot see the peer to stop that: a SOCKHASH lookup returns a
 *   referenced socket and sk_msg programs may not call bpf_sk_release (verifier).
 * Plain TCP keeps flow control and autotuning for those streams.
 */
const volatile __u32 accel_bulk_msg_bytes = 16384;

static __always_inline void weft_endpoint_local(const struct bpf_sock_ops *skops,
						struct weft_endpoint *ep)
{
	struct weft_sock_key k = {};

	WEFT_SOCK_KEY(skops, &k, 0);
	__builtin_memcpy(ep->addr, k.local_addr, sizeof(ep->addr));
	ep->port = k.local_port;
	ep->family = k.family;
}

static __always_inline void weft_endpoint_remote(const struct bpf_sock_ops *skops,
						 struct weft_endpoint *ep)
{
	struct weft_sock_key k = {};

	WEFT_SOCK_KEY(skops, &k, 0);
	__builtin_memcpy(ep->addr, k.remote_addr, sizeof(ep->addr));
	ep->port = k.remote_port;
	ep->family = k.family;
}

static __always_inline void weft_want_state_cb(struct bpf_sock_ops *skops)
{
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* TCP_CONNECT_CB runs after the local port is bound and before the SYN is sent, so the
 * entry exists before the agent can possibly accept the connection. */
static __always_inline int weft_publish_origin(struct bpf_sock_ops *skops)
{
	struct weft_endpoint client = {};
	struct bpf_sock *sk = skops->sk;
	struct weft_origin *o;
	int err;

	if (!sk)
		return -ENOENT;
	o = bpf_sk_storage_get(&weft_sock_v1, sk, 0, 0);
	if (!o || !(o->flags & WEFT_SOCK_F_REDIRECTED))
		return -ENOENT;
	weft_endpoint_local(skops, &client);
	err = bpf_map_update_elem(&weft_origin_v1, &client, o, BPF_ANY);
	if (err)
		return err;
	WEFT_COUNT(origin_inserts, 1);
	/* A connect that fails never reaches the agent: drop the entry then. */
	weft_want_state_cb(skops);
	return 0;
}

static __always_inline int weft_insert(struct bpf_sock_ops *skops, struct weft_sock_key *key)
{
	int err;

	err = bpf_sock_hash_update(skops, &weft_skhash_v1, key, BPF_ANY);
	if (err)
		return err;
	WEFT_COUNT(sockmap_inserts, 1);
	return 0;
}

static __always_inline int weft_worth_inserting(const struct weft_endpoint *server)
{
	struct weft_accel *a = bpf_map_lookup_elem(&weft_accel_v1, server);

	return a && ((a->flags & WEFT_ACCEL_PINNED) ||
		     ((a->avg_bytes >= accel_min_bytes || (a->flags & WEFT_ACCEL_EAGER)) &&
		      a->avg_msg < accel_bulk_msg_bytes));
}

/* sk_msg counts what an inserted socket sends (TCP will not see those bytes), and the
 * socket reports it at close. */
static __always_inline void weft_count_sk_msg(struct bpf_sock_ops *skops, __u32 flags)
{
	struct weft_sock_bytes *sb;

	if (!skops->sk)
		return;
	sb = bpf_sk_storage_get(&weft_sockb_v2, skops->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (sb)
		sb->flags = flags;
	weft_want_state_cb(skops);
}

static __always_inline int weft_accelerate_client(struct bpf_sock_ops *skops)
{
	struct weft_sock_key key = {};
	struct weft_endpoint server = {};
	__u32 one = 1;
	int err;

	weft_endpoint_remote(skops, &server);
	if (!weft_worth_inserting(&server)) {
		WEFT_COUNT(sockmap_skipped, 1);
		return -ENOENT;
	}
	/* After the endpoint check: most connections stop there without paying for this. */
	if (weft_sock_skipped(skops->sk))
		return -ENOENT;
	err = WEFT_SOCK_KEY(skops, &key, 0);
	if (err)
		return err;
	err = weft_insert(skops, &key);
	if (err)
		return err;
	weft_count_sk_msg(skops, WEFT_SOCKB_CLIENT);
	return bpf_map_update_elem(&weft_peer_v1, &key, &one, BPF_ANY);
}

static __always_inline int weft_accelerate_server(struct bpf_sock_ops *skops)
{
	struct weft_sock_key key = {}, peer = {};
	struct weft_endpoint server = {};
	int err;

	if (weft_sock_skipped(skops->sk)) {
		/* Left alone, except that the agent's side of a redirected connection (the
		 * agent's pod is skipped under a kubepods capture root) still removes its
		 * client's origin entry at close (weft_on_close). */
		if (redirect_port && bpf_htons((__u16)skops->local_port) == redirect_port)
			weft_want_state_cb(skops);
		return -ENOENT;
	}
	/* Every server-side socket reports its size at close. */
	weft_want_state_cb(skops);
	weft_endpoint_local(skops, &server);
	err = WEFT_SOCK_KEY(skops, &peer, 1);
	if (err)
		return err;
	if (!weft_worth_inserting(&server) || bpf_map_delete_elem(&weft_peer_v1, &peer)) {
		WEFT_COUNT(sockmap_skipped, 1);
		return -ENOENT;
	}
	weft_count_sk_msg(skops, 0);
	WEFT_SOCK_KEY(skops, &key, 0);
	return weft_insert(skops, &key);
}

/* Folds one closed connection into its server endpoint's means: its bytes (when
 * `bytes` is known) and its bytes per write. Concurrent closes on other CPUs may lose an
 * update: it is a statistic, not an account. */
static __always_inline void weft_account(const struct weft_endpoint *server, int has_bytes,
					 __u64 bytes, __u64 written, __u64 writes)
{
	struct weft_accel *a = bpf_map_lookup_elem(&weft_accel_v1, server);
	__u64 msg = writes ? written / writes : 0;
	struct weft_accel fresh = { .avg_bytes = bytes };

	if (msg > 0xffffffff)
		msg = 0xffffffff;
	if (!a) {
		if (has_bytes) {
			fresh.avg_msg = msg;
			bpf_map_update_elem(&weft_accel_v1, server, &fresh, BPF_NOEXIST);
		}
		return;
	}
	if (has_bytes)
		a->avg_bytes = a->avg_bytes - (a->avg_bytes >> 3) + (bytes >> 3);
	if (writes)
		a->avg_msg = a->avg_msg - (a->avg_msg >> 3) + ((__u32)msg >> 3);
}

static __always_inline void weft_on_close(struct bpf_sock_ops *skops)
{
	struct weft_endpoint ep = {};
	struct bpf_sock *sk = skops->sk;
	struct weft_sock_bytes *sb;
	struct weft_origin *o;

	if (!sk)
		return;
	o = bpf_sk_storage_get(&weft_sock_v1, sk, 0, 0);
	if (o && (o->flags & WEFT_SOCK_F_REDIRECTED)) {
		/* A workload's redirected connect that failed never reaches the agent. */
		if (skops->args[0] == BPF_TCP_SYN_SENT) {
			weft_endpoint_local(skops, &ep);
			bpf_map_delete_elem(&weft_origin_v1, &ep);
		}
		return;
	}
	sb = bpf_sk_storage_get(&weft_sockb_v2, sk, 0, 0);
	if (sb && (sb->flags & WEFT_SOCKB_CLIENT)) {
		/* An inserted client: its writes tell its server endpoint's write size. */
		weft_endpoint_remote(skops, &ep);
		weft_account(&ep, 0, 0, sb->bytes, sb->msgs);
		return;
	}
	/* From here on: a server-side (accepted) socket of the mesh. */
	if (redirect_port && bpf_htons((__u16)skops->local_port) == redirect_port) {
		/* The agent's side of a redirected connection: its client's entry is done (an
		 * IPv6 client that came v4-mapped is keyed by its IPv4 endpoint on both sides,
		 * see WEFT_SOCK_KEY). */
		weft_endpoint_remote(skops, &ep);
		bpf_map_delete_elem(&weft_origin_v1, &ep);
		/* A skipped socket records nothing (see weft_accelerate_server). */
		if (weft_sock_skipped(sk))
			return;
	}
	weft_endpoint_local(skops, &ep);
	if (sb) /* inserted: TCP saw none of the payload, sk_msg saw what it sent */
		weft_account(&ep, 1, skops->bytes_received + skops->bytes_acked + sb->bytes,
			     sb->bytes, sb->msgs);
	else
		weft_account(&ep, 1, skops->bytes_received + skops->bytes_acked,
			     skops->bytes_received + skops->bytes_acked,
			     skops->data_segs_in + skops->data_segs_out);
}

SEC("sockops")
int weft_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		weft_publish_origin(skops);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		weft_accelerate_client(skops);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		weft_accelerate_server(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			weft_on_close(skops);
		break;
	}
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
