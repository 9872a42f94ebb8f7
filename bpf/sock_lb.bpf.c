// SPDX-License-Identifier: Apache-2.0
/*
 * Socket-level L4 load balancing: the cgroup sock_addr hooks of the workloads cgroup.
 * connect4/6 rewrite a VIP to a backend (TCP and connected UDP) or to the agent's
 * outbound listener (redirect mode) once per socket, so the choice is stable for the
 * connection and no packet ever carries the VIP. sendmsg/recvmsg do the same per
 * datagram for unconnected UDP and undo it on replies; getpeername shows the VIP.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "lb.h"
#include "maps.h"

/* The agent's outbound listener, set per node at load time (network byte order). A v6
 * socket reaches an IPv4 listener through a v4-mapped redirect_ip6. */
const volatile __u32 redirect_ip4 = 0;
const volatile __u32 redirect_ip6[4] = {};
const volatile __u16 redirect_port = 0;

static __always_inline void weft_ctx_dst(const struct bpf_sock_addr *ctx, __u8 family,
					 struct weft_endpoint *ep)
{
	if (family == WEFT_FAMILY_INET4) {
		ep->addr[0] = ctx->user_ip4;
	} else {
		ep->addr[0] = ctx->user_ip6[0];
		ep->addr[1] = ctx->user_ip6[1];
		ep->addr[2] = ctx->user_ip6[2];
		ep->addr[3] = ctx->user_ip6[3];
	}
	ep->port = (__u16)ctx->user_port;
	ep->family = family;
}

static __always_inline void weft_ctx_set_dst(struct bpf_sock_addr *ctx, __u8 family,
					     const struct weft_endpoint *ep)
{
	if (family == WEFT_FAMILY_INET4) {
		ctx->user_ip4 = ep->addr[0];
	} else {
		ctx->user_ip6[0] = ep->addr[0];
		ctx->user_ip6[1] = ep->addr[1];
		ctx->user_ip6[2] = ep->addr[2];
		ctx->user_ip6[3] = ep->addr[3];
	}
	ctx->user_port = ep->port;
}

/* Where a connection to `vip` goes: a backend or the agent. -ENOENT: not a service. */
static __always_inline int weft_resolve(const struct weft_endpoint *vip, __u8 proto,
					__u32 hash, struct weft_endpoint *to, __u8 *how)
{
	struct weft_backend *be;
	__u32 flags = 0;
	int err;

	err = weft_backend_pick(vip, proto, hash, &be, &flags);
	if (err)
		return err;
	if (flags & WEFT_SVC_F_REDIRECT) {
		/* Only TCP is proxied; without a configured listener refusing is safer than
		 * letting the VIP leak onto the network. */
		if (proto != IPPROTO_TCP || !redirect_port)
			return -ECONNREFUSED;
		if (vip->family == WEFT_FAMILY_INET4) {
			to->addr[0] = redirect_ip4;
		} else {
			to->addr[0] = redirect_ip6[0];
			to->addr[1] = redirect_ip6[1];
			to->addr[2] = redirect_ip6[2];
			to->addr[3] = redirect_ip6[3];
		}
		to->port = redirect_port;
		*how = WEFT_SOCK_F_REDIRECTED;
		return 0;
	}
	if (!be || be->family != vip->family)
		return -EAFNOSUPPORT;
	__builtin_memcpy(to->addr, be->addr, sizeof(to->addr));
	to->port = be->port;
	*how = WEFT_SOCK_F_BALANCED;
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
	bpf_set_retval(err == -EAGAIN ? -ECONNREFUSED : err);
	return 0;
}

static __always_inline int weft_rewrite(struct bpf_sock_addr *ctx, __u8 family, __u32 hash,
					int record_origin)
{
	struct weft_endpoint vip = {}, to = {};
	__u8 proto = ctx->protocol;
	__u8 how = 0;
	int err;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 1;
	weft_ctx_dst(ctx, family, &vip);
	err = weft_resolve(&vip, proto, hash, &to, &how);
	if (err == -ENOENT)
		return 1;
	if (err)
		return weft_refuse(err);
	to.family = family;
	if (record_origin) {
		err = weft_remember_origin(ctx, &vip, how);
		/* The agent cannot serve a redirected connection whose origin it cannot
		 * learn; a balanced one only loses the VIP in getpeername(). */
		if (err && how == WEFT_SOCK_F_REDIRECTED)
			return weft_refuse(err);
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
	key.family = family;
	vip = bpf_map_lookup_elem(&weft_revnat_v1, &key);
	if (vip)
		weft_ctx_set_dst(ctx, family, vip);
	return 1;
}

/* getpeername() on a rewritten socket: the app sees the address it connected to. */
static __always_inline int weft_show_vip(struct bpf_sock_addr *ctx, __u8 family)
{
	struct weft_origin *o;
	struct weft_endpoint vip = {};

	o = bpf_sk_storage_get(&weft_sock_v1, ctx->sk, 0, 0);
	if (!o || !o->flags || o->family != family)
		return 1;
	__builtin_memcpy(vip.addr, o->addr, sizeof(vip.addr));
	vip.port = o->port;
	weft_ctx_set_dst(ctx, family, &vip);
	return 1;
}

/* Connected sockets choose at random, once. */
SEC("cgroup/connect4")
int weft_connect4(struct bpf_sock_addr *ctx)
{
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
