// Which BPF objects make up the datapath, where each program attaches, and the pinned
// map names (bpf/include/maps.h). One table so open(), inspect() and cleanup() agree.
export const OBJECTS = ['sock_lb', 'sockops', 'sk_msg', 'ingress'] as const;
export type ObjectName = (typeof OBJECTS)[number];

export interface CgroupProgram {
  object: ObjectName;
  program: string;
  attachType: string;
  /** 'root': <cg2>/weft/<node> (agent + workloads); 'workloads': workloads only. With a
   *  capture root (Datapath.open({ captureRoot })) every program attaches there. */
  where: 'root' | 'workloads';
  /** Attached only while the node's mTLS mode is STRICT (Datapath.setMtlsMode): a
   *  cgroup_skb hook runs for every packet a workload receives, so it is not left
   *  in place to return "pass" while nothing is enforced. */
  strictOnly?: boolean;
}

const sockAddr = (program: string, attachType: string): CgroupProgram =>
  ({ object: 'sock_lb', program, attachType, where: 'workloads' });

export const CGROUP_PROGRAMS: CgroupProgram[] = [
  sockAddr('weft_connect4', 'cgroup_inet4_connect'),
  sockAddr('weft_connect6', 'cgroup_inet6_connect'),
  sockAddr('weft_sendmsg4', 'cgroup_udp4_sendmsg'),
  sockAddr('weft_sendmsg6', 'cgroup_udp6_sendmsg'),
  sockAddr('weft_recvmsg4', 'cgroup_udp4_recvmsg'),
  sockAddr('weft_recvmsg6', 'cgroup_udp6_recvmsg'),
  sockAddr('weft_getpeername4', 'cgroup_inet4_getpeername'),
  sockAddr('weft_getpeername6', 'cgroup_inet6_getpeername'),
  { object: 'sockops', program: 'weft_sockops', attachType: 'cgroup_sock_ops', where: 'root' },
  { object: 'ingress', program: 'weft_ingress', attachType: 'cgroup_inet_ingress', where: 'workloads', strictOnly: true },
];

export const SK_MSG_PROGRAM = { object: 'sk_msg' as ObjectName, program: 'weft_sk_msg' };

export const MAPS = {
  svc: 'weft_svc_v1',
  backend: 'weft_backend_v1',
  slot: 'weft_slot_v1',
  sock: 'weft_sock_v1',
  peerVip: 'weft_peervip_v1',
  origin: 'weft_origin_v1',
  revnat: 'weft_revnat_v1',
  skhash: 'weft_skhash_v1',
  accel: 'weft_accel_v1',
  peer: 'weft_peer_v1',
  sockb: 'weft_sockb_v2',
  cfg: 'weft_cfg_v1',
  local: 'weft_local_v1',
  agentListener: 'weft_agentl_v1',
  ctrs: 'weft_ctrs_v3',
  skip: 'weft_skip_v1',
  skipState: 'weft_skipn_v1',
  direct: 'weft_direct_v1',
  dns: 'weft_dns_v1',
  dnsListeners: 'weft_dnsl_v1',
} as const;
