/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Service lookup and weighted backend choice, shared by every sock_addr hook. Helpers
 * return 0 or -errno; only the program entry points turn that into a verdict.
 */
#ifndef WEFT_LB_H
#define WEFT_LB_H

#include <linux/errno.h>

#include "maps.h"

static __always_inline int weft_svc_lookup(const struct weft_endpoint *dst, __u8 proto,
					   struct weft_svc **svc)
{
	struct weft_svc_key key = {
		.addr = { dst->addr[0], dst->addr[1], dst->addr[2], dst->addr[3] },
		.port = dst->port,
		.proto = proto,
		.family = dst->family,
	};

	*svc = bpf_map_lookup_elem(&weft_svc_v1, &key);
	return *svc ? 0 : -ENOENT;
}

/* MurmurHash3's 64-bit finalizer, low 32 bits: the Maglev entry of a workload is this
 * modulo the table size (agent/lib/maglev.ts maglevEntry computes the same). */
static __always_inline __u32 weft_fmix64(__u64 x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return (__u32)x;
}

/*
 * Resolves a service to its flags and a backend: the one that owns slot
 * `hash % slot_count` of the current rev (the caller's hash is random per connection or
 * per UDP socket; a Maglev service hashes the connecting workload instead). A redirect-mode service only gets a backend
 * when `balance_redirect` asks for one (fail-open while no agent listens); otherwise
 * *out stays NULL. A concurrent update flips the service entry and only then deletes
 * the old rev, so a socket that read the entry just before the flip can find its slot
 * gone: it re-reads the entry once and picks from the new rev, never from a mix of the
 * two sets.
 */
static __always_inline int weft_backend_pick(const struct weft_endpoint *dst, __u8 proto,
					     __u32 hash, int balance_redirect,
					     struct weft_backend **out, __u32 *flags)
{
	struct weft_rev_key key = {};
	struct weft_svc *svc;
	__u32 *pos;
	int attempt, err;

	*out = NULL;
	for (attempt = 0; attempt < 2; attempt++) {
		err = weft_svc_lookup(dst, proto, &svc);
		if (err)
			return err;
		*flags = svc->flags;
		if ((svc->flags & WEFT_SVC_F_REDIRECT) && !balance_redirect)
			return 0;
		if (svc->slot_count == 0)
			return -ECONNREFUSED;
		key.svc_id = svc->id;
		key.rev = svc->rev;
		/* Maglev: every connection of one workload lands on the same backend. */
		key.index = (svc->flags & WEFT_SVC_F_MAGLEV ? weft_fmix64(bpf_get_current_cgroup_id()) : hash) %
			    svc->slot_count;
		pos = bpf_map_lookup_elem(&weft_slot_v1, &key);
		if (!pos)
			continue;
		key.index = *pos;
		*out = bpf_map_lookup_elem(&weft_backend_v1, &key);
		if (*out)
			return 0;
	}
	return -EAGAIN;
}

#endif /* WEFT_LB_H */
