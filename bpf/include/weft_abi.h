/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every struct shared between the BPF programs, the native addon and the TypeScript
 * codecs (agent/datapath/codec.ts). It compiles both with `clang -target bpf` and with
 * g++ in user space, so it only uses <linux/types.h> and explicit padding: a layout that
 * depends on the compiler's padding rules could differ between the two sides and
 * silently corrupt every map entry. test/bpf/abi.test.ts compares the sizes and offsets
 * the addon reports (native/src/abi.cc) with the codecs.
 *
 * Byte order: addresses are stored as on the wire (network order, 16 bytes; IPv4 uses
 * the first 4 and leaves the rest zero), ports are network order in a __u16. That is
 * what the sock_addr and sockops contexts hand us, so the datapath never converts.
 */
#ifndef WEFT_ABI_H
#define WEFT_ABI_H

#include <linux/types.h>

#define WEFT_FAMILY_INET4 4
#define WEFT_FAMILY_INET6 6

/* weft_svc.flags */
#define WEFT_SVC_F_REDIRECT 0x1 /* send connections to the agent's outbound listener */
#define WEFT_SVC_F_MAGLEV 0x2   /* slots hold a Maglev table: the connecting workload's
                                  * cgroup id picks the entry (agent/lib/maglev.ts) */

/* weft_origin.flags */
#define WEFT_SOCK_F_BALANCED 0x1   /* destination rewritten to a backend */
#define WEFT_SOCK_F_REDIRECTED 0x2 /* destination rewritten to the agent */

/* weft_node_cfg.fail_mode: what a redirect-mode service does while no agent listens */
#define WEFT_FAIL_CLOSED 0 /* refuse the connect (ECONNREFUSED): L7 policy and mTLS hold */
#define WEFT_FAIL_OPEN 1   /* balance it in the kernel like an L4 service */

/* weft_node_cfg.mtls_mode: who may open connections to a mesh workload */
#define WEFT_MTLS_PERMISSIVE 0 /* anyone (plaintext from outside the mesh too) */
#define WEFT_MTLS_STRICT 1     /* only this node: its agent (after mTLS) and local workloads */

/* weft_local_v1 values: why an address is in the map */
#define WEFT_LOCAL_F_WORKLOAD 0x1 /* a mesh workload of this node (weft run --address) */

/* weft_accel.flags */
#define WEFT_ACCEL_PINNED 0x1 /* set by the agent: always insert */
#define WEFT_ACCEL_EAGER 0x2  /* set by the agent for its own hops (its outbound listener, the local
                              * endpoints it pools to): insert from the first connection, without
                              * waiting to learn accel_min_bytes, unless writes are learned to be bulk */

/* weft_direct_v1 values: why a workload endpoint is in the map */
#define WEFT_DIRECT_F_MESH 0x1 /* a mesh workload's endpoint whose service connections go
                                * through the agent (authorization, mTLS hop): a direct
                                * connect to it is redirected the same way */
/* weft_skip_v1 values: why weft leaves a cgroup's sockets alone */
#define WEFT_SKIP_F_SKIP 0x1 /* the agent's pod, a hostNetwork pod, a pod opted out */

/* Key of weft_skip_v1: a cgroup v2 id (the directory's inode number). Every program
 * that captures sockets checks the socket's cgroup and its ancestors at
 * capture_level + 1 and + 2, so a pod's id covers its containers. */
struct weft_skip_key {
	__u64 cgroup_id;
};

struct weft_skip {
	__u32 flags; /* WEFT_SKIP_F_* */
};

/* weft_skipn_v1 (single-entry array): how many entries weft_skip_v1 holds, kept by the
 * agent; 0 lets every program skip the skip-map lookups. */
struct weft_skip_state {
	__u32 entries;
};

/* An IP endpoint: key of the origin map, value of the UDP reverse-NAT map, key of the
 * acceleration map. */
struct weft_endpoint {
	__u32 addr[4];
	__u16 port;
	__u8 family;
	__u8 pad;
};

/* A bare IP address: key of the local-workload map (STRICT's allow-list of this node's
 * workload addresses, e.g. pod IPs). IPv4 uses addr[0]; v4-mapped IPv6 is stored as
 * IPv4, since that is the packet the ingress hook sees. */
struct weft_addr {
	__u32 addr[4];
	__u8 family;
	__u8 pad[3];
};

/* Key of weft_direct_v1: a mesh workload's own address and a port it serves (network
 * order), or port 0 for every port of the address. connect4/6 look up the exact port
 * first, then port 0. IPv4 uses addr[0]; a v4-mapped IPv6 destination is looked up as
 * IPv4. */
struct weft_direct_key {
	__u32 addr[4];
	__u16 port;
	__u8 family;
	__u8 pad;
};
struct weft_direct {
	__u32 flags; /* WEFT_DIRECT_F_* */
};
/* A service: VIP, port and L4 protocol. */
struct weft_svc_key {
	__u32 addr[4];
	__u16 port;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family;
};

/* A service entry. Its backends and selection slots live under (id, rev); user space
 * writes a new rev first and then flips this entry in one update, so a connecting
 * socket sees either the old or the new backend set, never a mix. */
struct weft_svc {
	__u32 id;
	__u32 rev;
	__u16 slot_count;    /* 0: no backends, connect fails with ECONNREFUSED */
	__u16 backend_count;
	__u32 flags;         /* WEFT_SVC_F_* */
};

/* Key of the backend map (index = backend position) and of the slot map
 * (index = slot number, value = backend position as a __u32). */
struct weft_rev_key {
	__u32 svc_id;
	__u32 rev;
	__u32 index;
};

struct weft_backend {
	__u32 addr[4];
	__u16 port;
	__u8 family;
	__u8 pad;
	__u32 weight; /* kept for user space, which reads the maps back after a restart */
};

/* Where a socket was originally going and who opened it: per-socket storage written by
 * connect4/6, and the value of the origin map keyed by the client's endpoint. An IPv6
 * socket that connected v4-mapped has an IPv4 origin and is keyed by its IPv4 endpoint. */
struct weft_origin {
	__u32 addr[4];
	__u16 port;
	__u8 family;
	__u8 flags; /* WEFT_SOCK_F_* */
	__u32 pad;
	__u64 cgroup_id;
};

/* UDP reverse NAT: (socket, backend) → VIP, so replies appear to come from the VIP. */
struct weft_revnat_key {
	__u64 cookie;
	__u32 addr[4];
	__u16 port;
	__u8 family;
	__u8 pad;
	__u32 pad2;
};

/* SOCKHASH key: one established TCP socket seen from its own side. */
struct weft_sock_key {
	__u32 local_addr[4];
	__u32 remote_addr[4];
	__u16 local_port;  /* network order, like remote_port */
	__u16 remote_port;
	__u8 family;
	__u8 pad[3];
};

/* Per server endpoint of this node's mesh: how much a connection to it carries and how
 * big its writes are, as exponentially weighted means over its recent connections
 * (weight 1/8). */
struct weft_accel {
	__u64 avg_bytes;
	__u32 flags;   /* WEFT_ACCEL_* */
	__u32 avg_msg; /* bytes per TCP data segment or sk_msg message */
};

/* weft_sock_bytes.flags */
#define WEFT_SOCKB_CLIENT 0x1 /* the connecting side (its server endpoint is the remote one) */

/* Per inserted socket: what it sent through sk_msg (TCP's counters do not see it). */
struct weft_sock_bytes {
	__u64 bytes;
	__u32 msgs;
	__u32 flags; /* WEFT_SOCKB_* */
};

/* Per-node settings the agent changes at run time (single-entry array; zero = defaults). */
struct weft_node_cfg {
	__u32 fail_mode; /* WEFT_FAIL_* */
	__u32 mtls_mode; /* WEFT_MTLS_* */
};

/* weft_dns_v1 (single-entry array): the agent's DNS listener (agent/dns/). connect4 and
 * sendmsg4 send a workload's TCP and UDP queries to port 53 of any IPv4 address that is
 * no service VIP there instead, and recvmsg4/getpeername4 show the resolver it asked
 * (bpf/sock_lb.bpf.c). port 0: capture off. */
struct weft_dns_cfg {
	__u32 addr; /* IPv4, network order */
	__u16 port; /* network order */
	__u16 pad;
};

/* Kernel-side counters, one copy per CPU (single-entry percpu array). The field order
 * is the counter index; user space sums the copies. */
struct weft_counters {
	__u64 connect_balanced;    /* connects/sendmsgs rewritten to a backend */
	__u64 connect_redirected;  /* connects rewritten to the agent's listener */
	__u64 no_backend;          /* refused: the service has no backends */
	__u64 sockmap_inserts;     /* sockets put into the SOCKHASH */
	__u64 sockmap_skipped;     /* established sockets judged not worth inserting */
	__u64 msg_redirected;      /* sk_msg messages redirected socket-to-socket */
	__u64 msg_redirected_bytes;
	__u64 msg_miss;            /* sk_msg found no local peer: normal TCP path */
	__u64 origin_inserts;      /* redirected connections recorded in the origin map */
	__u64 fail_open;           /* redirect-mode connects balanced in the kernel: no agent */
	__u64 fail_closed;         /* redirect-mode connects refused: no agent listening */
	__u64 strict_drops;        /* SYNs from outside the node to a workload, mTLS STRICT */
};

/* Both compilers must agree on these sizes; a field added without explicit padding
 * breaks the build on both sides instead of corrupting map entries at run time. */
#ifdef __cplusplus
#define WEFT_ABI_SIZE(T, n) static_assert(sizeof(struct T) == (n), #T " layout changed")
#else
#define WEFT_ABI_SIZE(T, n) _Static_assert(sizeof(struct T) == (n), #T " layout changed")
#endif
WEFT_ABI_SIZE(weft_endpoint, 20);
WEFT_ABI_SIZE(weft_addr, 20);
WEFT_ABI_SIZE(weft_svc_key, 20);
WEFT_ABI_SIZE(weft_svc, 16);
WEFT_ABI_SIZE(weft_rev_key, 12);
WEFT_ABI_SIZE(weft_backend, 24);
WEFT_ABI_SIZE(weft_origin, 32);
WEFT_ABI_SIZE(weft_revnat_key, 32);
WEFT_ABI_SIZE(weft_sock_key, 40);
WEFT_ABI_SIZE(weft_accel, 16);
WEFT_ABI_SIZE(weft_sock_bytes, 16);
WEFT_ABI_SIZE(weft_node_cfg, 8);
WEFT_ABI_SIZE(weft_counters, 96);
WEFT_ABI_SIZE(weft_skip_key, 8);
WEFT_ABI_SIZE(weft_skip, 4);
WEFT_ABI_SIZE(weft_skip_state, 4);
WEFT_ABI_SIZE(weft_direct_key, 20);
WEFT_ABI_SIZE(weft_direct, 4);
WEFT_ABI_SIZE(weft_dns_cfg, 8);

#endif /* WEFT_ABI_H */
