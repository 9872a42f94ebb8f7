// SPDX-License-Identifier: Apache-2.0
/*
 * Socket-level L4 load balancing: the cgroup sock_addr hooks of the workloads cgroup.
 * connect4/6 rewrite a VIP to a backend (TCP and connected UDP) or to the agent's
 * outbound listener (redirect mode) once per socket, so the choice is stable for the
 * connection and no packet ever carries the VIP. sendmsg/recvmsg do the same per
 * datagram for unconnected UDP and undo it on replies; getpeername shows the VIP.
 * Sockets of a cgroup in the skip map (skip.h) are left untouched by all of them.
 *
 * Dual-stack sockets: an IPv6 socket reaches an IPv4 address through its v4-mapped form
 * (::ffff:a.b.c.d; gRPC's C core, the JVM, Node with family 6 do that). The v6 hooks
 * read such an address as the IPv4 endpoint it maps (weft_ctx_dst), so it meets the
 * IPv4 services, the direct map and the counters like a connect4 would, and everything
 * they write back into a v6 context (backend, agent, VIP) goes in v4-mapped form
 * (weft_ctx_set_dst): the socket keeps talking IPv4 underneath and shows the address it
 * used. Unconnected UDP to a v4-mapped address runs sendmsg4 (the kernel hands such a
 * datagram to udp_sendmsg), its replies recvmsg6.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb.h"
#include "maps.h"
#include "skip.h"

/* The agent's outbound listener, set per node at load time (network byte order). A v6
 * socket reaches an IPv4 listener through a v4-mapped redirect_ip6. */
const volatile __u32 redirect_ip4 = 0;
const volatile __u32 redirect_ip6[4] = {};
const volatile __u16 redirect_port = 0;

/* Whether a v6 context's address is v4-mapped (::ffff:a.b.c.d). */
static __always_inline int weft_ctx_v4mapped(const struct bpf_sock_addr *ctx)
{
	return !ctx->user_ip6[0] && !ctx->user_ip6[1] && ctx->user_ip6[2] == bpf_htonl(0xffff);
}

/* The address of a `hook`-family context (the program's family, a constant once
 * inlined, so the v4 programs never pay for the v6 check): a v4-mapped one reads as the
 * IPv4 endpoint it maps, family WEFT_FAMILY_INET4. */
static __always_inline void weft_ctx_dst(const struct bpf_sock_addr *ctx, __u8 hook,
					 struct weft_endpoint *ep)
{
	if (hook == WEFT_FAMILY_INET4) {
		ep->addr[0] = ctx->user_ip4;
		ep->family = WEFT_FAMILY_INET4;
	} else if (weft_ctx_v4mapped(ctx)) {
		ep->addr[0] = ctx->user_ip6[3];
		ep->family = WEFT_FAMILY_INET4;
	} else {
		ep->addr[0] = ctx->user_ip6[0];
		ep->addr[1] = ctx->user_ip6[1];
		ep->addr[2] = ctx->user_ip6[2];
		ep->addr[3] = ctx->user_ip6[3];
		ep->family = WEFT_FAMILY_INET6;
	}
	ep->port = (__u16)ctx->user_port;
}

/* Writes `ep` into a `hook`-family context: an IPv4 endpoint into a v6 one v4-mapped. */
static __always_inline void weft_ctx_set_dst(struct bpf_sock_addr *ctx, __u8 hook,
					     const struct weft_endpoint *ep)
{
	if (hook == WEFT_FAMILY_INET4) {
		ctx->user_ip4 = ep->addr[0];
	} else if (ep->family == WEFT_FAMILY_INET4) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = ep->addr[0];
	} else {
		ctx->user_ip6[0] = ep->addr[0];
		ctx->user_ip6[1] = ep->addr[1];
		ctx->user_ip6[2] = ep->addr[2];
		ctx->user_ip6[3] = ep->addr[3];
	}
	ctx->user_port = ep->port;
}

/*
 * Whether the agent's outbound listener exists. The programs are pinned and outlive the
 * agent: while no agent process runs (crash, upgrade without a listener handover,
 * `kill -9`), rewriting to its port would give the app a refused or, in a pod
 * namespace, a hanging connect with no say in it. First a listener lookup in the
 * connecting socket's network namespace (a workload sharing the node's namespace): one
 * hash walk, and only redirect-mode connects pay it. A v6 socket redirected to a
 * v4-mapped target connects over IPv4, so it looks up IPv4. A pod in its own network
 * namespace has no listener there (the redirect target is the node's address, the
 * listener lives in the node's namespace, and sk_lookup cannot name that namespace
 * from the pod's): for it, the listening socket the agent put into weft_agentl_v1
 * answers; the kernel drops it from the map when the socket closes, i.e. when the last
 * agent process holding it is gone.
 */
static __always_inline int weft_agent_listening(struct bpf_sock_addr *ctx, __u8 family)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u32 zero = 0;
	__u32 size;

	if (!redirect_port)
		return 0;
	if (family == WEFT_FAMILY_INET4 ||
	    (!redirect_ip6[0] && !redirect_ip6[1] && redirect_ip6[2] == bpf_htonl(0xffff))) {
		t.ipv4.daddr = family == WEFT_FAMILY_INET4 ? redirect_ip4 : redirect_ip6[3];
		t.ipv4.dport = redirect_port;
		size = sizeof(t.ipv4);
	} else {
		t.ipv6.daddr[0] = redirect_ip6[0];
		t.ipv6.daddr[1] = redirect_ip6[1];
		t.ipv6.daddr[2] = redirect_ip6[2];
		t.ipv6.daddr[3] = redirect_ip6[3];
		t.ipv6.dport = redirect_port;
		size = sizeof(t.ipv6);
	}
	sk = bpf_sk_lookup_tcp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		sk = (struct bpf_sock *)bpf_map_lookup_elem(&weft_agentl_v1, &zero);
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

/* The node's fail mode (MeshConfig failMode), flipped by the agent through the map. */
static __always_inline int weft_fail_open(void)
{
	struct weft_node_cfg *cfg;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&weft_cfg_v1, &zero);
	return cfg && cfg->fail_mode == WEFT_FAIL_OPEN;
}

/* Internal: a redirect-mode connect refused because no agent listens (fail-closed). */
#define WEFT_EAGENT_DOWN ESHUTDOWN

/* The agent's outbound listener as a destination of `family`. */
static __always_inline void weft_redirect_target(__u8 family, struct weft_endpoint *to)
{
	if (family == WEFT_FAMILY_INET4) {
		to->addr[0] = redirect_ip4;
	} else {
		to->addr[0] = redirect_ip6[0];
		to->addr[1] = redirect_ip6[1];
		to->addr[2] = redirect_ip6[2];
		to->addr[3] = redirect_ip6[3];
	}
	to->port = redirect_port;
}

/* Where a connection to `vip` goes: a backend or the agent. -ENOENT: not a service. */
static __always_inline int weft_resolve(struct bpf_sock_addr *ctx, const struct weft_endpoint *vip,
					__u8 proto, __u32 hash, struct weft_endpoint *to, __u8 *how)
{
	struct weft_backend *be;
	__u32 flags = 0;
	int err;

	err = weft_backend_pick(vip, proto, hash, 0, &be, &flags);
	if (err == -ENOENT)
		return err;
	/* A service: a skipped cgroup's socket still goes where it asked, untouched (checked
	 * only now, so connects to anything but a VIP never pay for it). */
	if (weft_current_skipped())
		return -ENOENT;
	if (err)
		return err;
	if (flags & WEFT_SVC_F_REDIRECT) {
		/* Only TCP is proxied (user space rejects anything else). */
		if (proto != IPPROTO_TCP)
			return -ECONNREFUSED;
		if (!weft_agent_listening(ctx, vip->family)) {
			/* Fail-closed: an immediate ECONNREFUSED, not a hang and never a
			 * connection that skips the L7 policy and mTLS the service asked for. */
			if (!weft_fail_open())
				return -WEFT_EAGENT_DOWN;
			/* Fail-open: the user chose availability over L7 policy and mTLS
			 * while the agent is down; balance over the service's backends. */
			err = weft_backend_pick(vip, proto, hash, 1, &be, &flags);
			if (err)
				return err;
			if (!be || be->family != vip->family)
				return -EAFNOSUPPORT;
			WEFT_COUNT(fail_open, 1);
			goto balance;
		}
		weft_redirect_target(vip->family, to);
		*how = WEFT_SOCK_F_REDIRECTED;
		return 0;
	}
	if (!be || be->family != vip->family)
		return -EAFNOSUPPORT;
balance:
	__builtin_memcpy(to->addr, be->addr, sizeof(to->addr));
	to->port = be->port;
	*how = WEFT_SOCK_F_BALANCED;
	return 0;
}

/*
 * A TCP connect to a mesh workload's own address (a pod IP, 127.0.0.x:port of a VM
 * workload) rather than a VIP: when weft_direct_v1 lists the endpoint, it goes to the
 * agent exactly like a redirect-mode service's connection, so the destination's
 * authorization (and the mTLS hop) applies to it as to one through the service. Only
 * connects that matched no VIP get here: one hash lookup (two for a listed address on
 * an unlisted port). -ENOENT: leave the connect as it is.
 */
static __always_inline int weft_resolve_direct(struct bpf_sock_addr *ctx, const struct weft_endpoint *dst,
					       struct weft_endpoint *to, __u8 *how)
{
	struct weft_direct_key key = { .port = dst->port, .family = dst->family };

	/* A v4-mapped destination arrives as IPv4 already (weft_ctx_dst). */
	__builtin_memcpy(key.addr, dst->addr, sizeof(key.addr));
	if (!bpf_map_lookup_elem(&weft_direct_v1, &key)) {
		key.port = 0;
		if (!bpf_map_lookup_elem(&weft_direct_v1, &key))
			return -ENOENT;
	}
	if (weft_current_skipped())
		return -ENOENT;
	if (!weft_agent_listening(ctx, dst->family)) {
		if (!weft_fail_open())
			return -WEFT_EAGENT_DOWN;
		/* Fail-open: the connection goes where it asked, as a balanced one would. */
		WEFT_COUNT(fail_open, 1);
		return -ENOENT;
	}
	weft_redirect_target(dst->family, to);
	*how = WEFT_SOCK_F_REDIRECTED;
	return 0;
}

/* Per-socket record of the original destination and the cgroup that connected. */
static __always_inline int weft_remember_origin(struct bpf_sock_addr *ctx,
						const struct weft_endpoint *vip, __u8 how)
{
	struct weft_origin *o;

	o = bpf_sk_storage_get(&weft_sock_v1, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!o)
		return -ENOMEM;
	__builtin_memcpy(o->addr, vip->addr, sizeof(o->addr));
	o->port = vip->port;
	o->family = vip->family;
	o->flags = how;
	o->cgroup_id = bpf_get_current_cgroup_id();
	return 0;
}

/* What getpeername() of a balanced socket shows: the VIP, keyed by the socket's cookie
 * (the backend is written first and the cookie last, and a reader checks both). */
static __always_inline void weft_remember_peer(struct bpf_sock_addr *ctx,
					       const struct weft_endpoint *backend,
					       const struct weft_endpoint *vip)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	__u32 slot = (__u32)(cookie % WEFT_PEER_SLOTS);
	struct weft_peer_vip *p = bpf_map_lookup_elem(&weft_peervip_v1, &slot);

	if (!p)
		return;
	p->backend = *backend;
	p->vip = *vip;
	barrier();
	p->cookie = cookie;
}

/* UDP replies come from the backend: remember which VIP this socket sent to it for. */
static __always_inline int weft_remember_revnat(struct bpf_sock_addr *ctx,
						const struct weft_endpoint *backend,
						const struct weft_endpoint *vip)
{
	struct weft_revnat_key key = {
		.cookie = bpf_get_socket_cookie(ctx),
		.port = backend->port,
		.family = backend->family,
	};

	__builtin_memcpy(key.addr, backend->addr, sizeof(key.addr));
	return bpf_map_update_elem(&weft_revnat_v1, &key, vip, BPF_ANY);
}

/*
 * Turns a failure into the verdict. A plain `return 0` would make connect() fail with
 * EPERM, which clients treat as a local policy error and some retry forever; a service
 * without backends must look like a closed port, so the error is set explicitly.
 */
static __always_inline int weft_refuse(int err)
{
	if (err == -ECONNREFUSED)
		WEFT_COUNT(no_backend, 1);
	else if (err == -WEFT_EAGENT_DOWN)
		WEFT_COUNT(fail_closed, 1);
	bpf_set_retval(err == -EAGAIN || err == -WEFT_EAGENT_DOWN ? -ECONNREFUSED : err);
	return 0;
}

static __always_inline int weft_rewrite(struct bpf_sock_addr *ctx, __u8 family, __u32 hash,
					int connecting)
{
	struct weft_endpoint vip = {}, to = {};
	__u8 proto = ctx->protocol;
	__u8 how = 0;
	int err;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 1;
	weft_ctx_dst(ctx, family, &vip);
	err = weft_resolve(ctx, &vip, proto, hash, &to, &how);
	if (err == -ENOENT) {
		/* Not a VIP: a direct connect to a listed mesh workload endpoint? */
		if (!connecting || proto != IPPROTO_TCP)
			return 1;
		err = weft_resolve_direct(ctx, &vip, &to, &how);
		if (err == -ENOENT)
			return 1;
	}
	if (err)
		return weft_refuse(err);
	/* The resolved side's family (a v4-mapped VIP resolves to an IPv4 backend). */
	to.family = vip.family;
	if (connecting && how == WEFT_SOCK_F_REDIRECTED) {
		/* The agent cannot serve a redirected connection whose origin it cannot learn. */
		err = weft_remember_origin(ctx, &vip, how);
		if (err)
			return weft_refuse(err);
	} else if (connecting) {
		weft_remember_peer(ctx, &to, &vip);
	}
	if (proto == IPPROTO_UDP)
		weft_remember_revnat(ctx, &to, &vip);
	weft_ctx_set_dst(ctx, family, &to);
	if (how == WEFT_SOCK_F_REDIRECTED)
		WEFT_COUNT(connect_redirected, 1);
	else
		WEFT_COUNT(connect_balanced, 1);
	return 1;
}

/* Replies to a balanced UDP socket: show the VIP as their source. */
static __always_inline int weft_unrewrite_source(struct bpf_sock_addr *ctx, __u8 family)
{
	struct weft_revnat_key key = { .cookie = bpf_get_socket_cookie(ctx) };
	struct weft_endpoint src = {};
	struct weft_endpoint *vip;

	weft_ctx_dst(ctx, family, &src);
	__builtin_memcpy(key.addr, src.addr, sizeof(key.addr));
	key.port = src.port;
	key.family = src.family;
	vip = bpf_map_lookup_elem(&weft_revnat_v1, &key);
	if (vip && !weft_current_skipped())
		weft_ctx_set_dst(ctx, family, vip);
	return 1;
}

/* getpeername() on a rewritten socket: the app sees the address it connected to. */
static __always_inline int weft_show_vip(struct bpf_sock_addr *ctx, __u8 family)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	__u32 slot = (__u32)(cookie % WEFT_PEER_SLOTS);
	struct weft_endpoint peer = {}, vip = {};
	struct weft_peer_vip *p;
	struct weft_origin *o;

	p = bpf_map_lookup_elem(&weft_peervip_v1, &slot);
	if (p && p->cookie == cookie) {
		weft_ctx_dst(ctx, family, &peer);
		if (p->backend.addr[0] == peer.addr[0] && p->backend.addr[1] == peer.addr[1] &&
		    p->backend.addr[2] == peer.addr[2] && p->backend.addr[3] == peer.addr[3] &&
		    p->backend.port == peer.port && p->backend.family == peer.family) {
			if (!weft_current_skipped())
				weft_ctx_set_dst(ctx, family, &p->vip);
			return 1;
		}
	}
	/* Redirected sockets keep their origin in socket storage (an IPv4 one on a v6 socket:
	 * it connected v4-mapped, and sees it so). */
	o = bpf_sk_storage_get(&weft_sock_v1, ctx->sk, 0, 0);
	if (!o || !o->flags || (family == WEFT_FAMILY_INET4 && o->family != WEFT_FAMILY_INET4) ||
	    weft_current_skipped())
		return 1;
	__builtin_memcpy(vip.addr, o->addr, sizeof(vip.addr));
	vip.port = o->port;
	vip.family = o->family;
	weft_ctx_set_dst(ctx, family, &vip);
	return 1;
}

/*
 * DNS capture (weft_dns_v1): a workload's query to port 53 of its resolver, over TCP or
 * UDP, goes to the agent's DNS listener instead, as ztunnel's DNS proxy does for Istio
 * ambient, so no workload needs new configuration. Only IPv4 destinations that are no
 * service VIP (a VIP on port 53 is a mesh service, balanced as any other), only sockets
 * of captured cgroups (skipped ones, e.g. the agent's own pod, resolve untouched), and
 * only while the agent's DNS socket of that protocol exists: in the caller's network
 * namespace, or in weft_dnsl_v1 for a pod in its own. Otherwise the query goes where it
 * was sent. Replies show the resolver as their source (recvmsg4 through the reverse-NAT
 * entry) and getpeername4 the resolver (the peer slot), as for a balanced socket.
 * Every other connect and sendmsg, a VIP's included, pays one comparison (port 53?).
 */
static __always_inline int weft_dns_listening(struct bpf_sock_addr *ctx, const struct weft_dns_cfg *cfg, __u8 proto)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u32 idx = proto == IPPROTO_TCP ? WEFT_DNSL_TCP : WEFT_DNSL_UDP;

	t.ipv4.daddr = cfg->addr;
	t.ipv4.dport = cfg->port;
	if (proto == IPPROTO_TCP)
		sk = bpf_sk_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	else
		sk = bpf_sk_lookup_udp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		sk = (struct bpf_sock *)bpf_map_lookup_elem(&weft_dnsl_v1, &idx);
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

/* 1: the query was sent to the agent's DNS listener; 0: not a captured query. */
static __always_inline int weft_dns_capture(struct bpf_sock_addr *ctx, int connecting)
{
	struct weft_endpoint resolver = {}, to = {};
	struct weft_svc_key svc = { .family = WEFT_FAMILY_INET4 };
	struct weft_dns_cfg *cfg;
	__u8 proto = ctx->protocol;
	__u32 zero = 0;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 0;
	cfg = bpf_map_lookup_elem(&weft_dns_v1, &zero);
	if (!cfg || !cfg->port || !cfg->addr)
		return 0;
	weft_ctx_dst(ctx, WEFT_FAMILY_INET4, &resolver);
	svc.addr[0] = resolver.addr[0];
	svc.port = resolver.port;
	svc.proto = proto;
	if (bpf_map_lookup_elem(&weft_svc_v1, &svc))
		return 0;
	if (weft_current_skipped() || !weft_dns_listening(ctx, cfg, proto))
		return 0;
	/* Zero-initialised above and filled field by field: with a designated initializer
	 * clang 14 dropped the addr[0] store from the peer slot's copy of `to`, and
	 * getpeername then showed the listener (test/bpf/dns.test.ts). */
	to.addr[0] = cfg->addr;
	to.port = cfg->port;
	to.family = WEFT_FAMILY_INET4;
	if (connecting)
		weft_remember_peer(ctx, &to, &resolver);
	if (proto == IPPROTO_UDP)
		weft_remember_revnat(ctx, &to, &resolver);
	ctx->user_ip4 = cfg->addr;
	ctx->user_port = cfg->port;
	return 1;
}

/* Connected sockets choose at random, once. */
SEC("cgroup/connect4")
int weft_connect4(struct bpf_sock_addr *ctx)
{
	if (ctx->user_port == bpf_htons(53) && weft_dns_capture(ctx, 1))
		return 1;
	return weft_rewrite(ctx, WEFT_FAMILY_INET4, bpf_get_prandom_u32(), 1);
}

SEC("cgroup/connect6")
int weft_connect6(struct bpf_sock_addr *ctx)
{
	return weft_rewrite(ctx, WEFT_FAMILY_INET6, bpf_get_prandom_u32(), 1);
}

/* Unconnected UDP chooses per datagram from the socket cookie, so one socket keeps
 * talking to one backend and its replies keep matching the reverse-NAT entry. */
SEC("cgroup/sendmsg4")
int weft_sendmsg4(struct bpf_sock_addr *ctx)
{
	if (ctx->user_port == bpf_htons(53) && weft_dns_capture(ctx, 0))
		return 1;
	return weft_rewrite(ctx, WEFT_FAMILY_INET4, (__u32)bpf_get_socket_cookie(ctx), 0);
}

SEC("cgroup/sendmsg6")
int weft_sendmsg6(struct bpf_sock_addr *ctx)
{
	return weft_rewrite(ctx, WEFT_FAMILY_INET6, (__u32)bpf_get_socket_cookie(ctx), 0);
}

SEC("cgroup/recvmsg4")
int weft_recvmsg4(struct bpf_sock_addr *ctx)
{
	return weft_unrewrite_source(ctx, WEFT_FAMILY_INET4);
}

SEC("cgroup/recvmsg6")
int weft_recvmsg6(struct bpf_sock_addr *ctx)
{
	return weft_unrewrite_source(ctx, WEFT_FAMILY_INET6);
}

SEC("cgroup/getpeername4")
int weft_getpeername4(struct bpf_sock_addr *ctx)
{
	return weft_show_vip(ctx, WEFT_FAMILY_INET4);
}

SEC("cgroup/getpeername6")
int weft_getpeername6(struct bpf_sock_addr *ctx)
{
	return weft_show_vip(ctx, WEFT_FAMILY_INET6);
}

char LICENSE[] SEC("license") = "GPL";
