// Typings for the weft native addon (native/src, Node-API over the system libbpf).
// Hand-written and tested (test/bpf/native.test.ts): keep them in step with the C++.
//
// Conventions
// - Every failure is thrown as a NativeError: `code` is the errno name ('EPERM',
//   'ENOENT', 'E2BIG', ...), `errno` the positive errno number, `op` the libbpf/syscall
//   operation that failed ('bpf_object__load', 'bpf_map_update_elem', ...) and the
//   message reads '<op>: <strerror text>'. Wrong argument types (and unknown attach type
//   names) throw TypeError; Buffers of the wrong size and bad flag values RangeError.
// - Keys and values are Buffers of exactly the map's key/value size (RangeError if not).
// - Calls are synchronous except `BpfObject.load()` (the verifier can take a while).
// - Handles own file descriptors; `close()` releases them early, otherwise the GC does.
//   close() twice is a no-op; any other use of a closed handle throws code 'EBADF'.
//   BpfProgram and BpfMap handles taken from a BpfObject keep that object alive and
//   throw 'EBADF' once it is closed.

export interface NativeError extends Error {
  code: string;
  errno: number;
  op: string;
}

export type LibbpfLevel = 'warn' | 'info' | 'debug';
/**
 * Routes libbpf's own log (libbpf_set_print) to `fn`; `null` silences it (until the first
 * call libbpf prints warnings to stderr). Lines from synchronous calls arrive during the
 * call; lines from `load()` (worker thread) arrive just before its promise settles. One
 * logger per process, called on the thread that set it (dropped when that thread's
 * environment exits); an exception thrown by `fn` is swallowed.
 */
export function setLogger(fn: ((level: LibbpfLevel, message: string) => void) | null): void;

/** Layouts of every struct in bpf/include/weft_abi.h as compiled by the C++ compiler. */
export interface StructLayout {
  size: number;
  fields: Record<string, { offset: number; size: number }>;
}
export const abi: Record<string, StructLayout>;

/** Number of possible CPUs: the stride of per-CPU map values. */
export function numPossibleCpus(): number;

/** The cgroup v2 id of a cgroup directory (what bpf_get_current_cgroup_id() returns).
 *  NativeError 'EINVAL' (op 'statfs') when the path is not on a cgroup2 mount. */
export function cgroupId(cgroupPath: string): bigint;

/**
 * A listening TCP socket as a bare fd (socket + SO_REUSEADDR + bind + listen): the
 * agent's supervisor holds listeners without accepting on them and passes them to its
 * workers. Errors are NativeErrors (op 'socket' or 'bind/listen', e.g. code EADDRINUSE).
 */
export function listenTcp(host: string, port: number, backlog?: number, reusePort?: boolean): number;
/** close(2) on an fd from listenTcp. */
export function closeFd(fd: number): void;

export interface ProgramQuery {
  /** Program ids attached to the cgroup for this attach type (BPF_PROG_QUERY). */
  progIds: number[];
}
/**
 * Attach types by libbpf name: 'cgroup_inet4_connect', 'cgroup_inet6_connect',
 * 'cgroup_udp4_sendmsg', 'cgroup_udp6_sendmsg', 'cgroup_udp4_recvmsg',
 * 'cgroup_udp6_recvmsg', 'cgroup_inet4_getpeername', 'cgroup_inet6_getpeername',
 * 'cgroup_sock_ops', 'sk_msg_verdict', 'sk_skb_stream_verdict', 'sk_skb_stream_parser'.
 */
export type AttachType = string;
export function queryCgroup(cgroupPath: string, attachType: AttachType): ProgramQuery;

export interface OpenOptions {
  /** Directory where maps declared with `pinning LIBBPF_PIN_BY_NAME` are pinned and
   *  re-used from on load (libbpf pin_root_path). Must be on bpffs. */
  pinRoot?: string;
  /** Object name used in libbpf log lines. */
  name?: string;
}

export class BpfObject {
  /** bpf_object__open_file. Nothing is loaded into the kernel yet. */
  static open(path: string, opts?: OpenOptions): BpfObject;
  /** Names of the programs / maps in the object (maps include libbpf's internal ones,
   *  e.g. '<object>.rodata'). */
  readonly programNames: string[];
  readonly mapNames: string[];
  /**
   * Sets a `const volatile` global (in .rodata) before load. `value` must be exactly the
   * variable's size (RangeError otherwise). Throws NativeError code 'ENOENT' for an
   * unknown variable and 'EBUSY' once load() has been called.
   */
  setConst(variable: string, value: Buffer): void;
  /** bpf_object__load on a worker thread. Resolves once every program is verified.
   *  Rejects (code 'EBUSY') when called twice; a verifier rejection is 'EACCES' or
   *  'EINVAL' with the verifier log sent to the logger. */
  load(): Promise<void>;
  /** Only after load() resolved (code 'EINVAL' before); 'ENOENT' for an unknown name. */
  program(name: string): BpfProgram;
  /** Only after load() resolved (code 'EINVAL' before); 'ENOENT' for an unknown name. */
  map(name: string): BpfMap;
  /** bpf_object__close: unloads programs that nothing else (link, map) holds. Throws
   *  'EBUSY' while load() is running. */
  close(): void;
}

export class BpfProgram {
  readonly name: string;
  /** Section name, e.g. 'cgroup/connect4'. */
  readonly section: string;
  /** Kernel program id (after load). */
  readonly id: number;
  readonly fd: number;
  /** bpf_program__attach_cgroup: attach type comes from the section. Returns a link
   *  that detaches when closed unless it is pinned first. */
  attachCgroup(cgroupPath: string): BpfLink;
  /** bpf_prog_attach(prog, map, type) for sk_msg / sk_skb programs on a SOCKMAP or
   *  SOCKHASH. The attachment lives as long as the map does. */
  attachToMap(map: BpfMap, attachType: AttachType): void;
  /** bpf_prog_detach2, the inverse of attachToMap. */
  detachFromMap(map: BpfMap, attachType: AttachType): void;
}

export class BpfLink {
  /** Re-opens a pinned link (bpf_link__open); 'EINVAL' if the pin is not a link. */
  static openPinned(path: string): BpfLink;
  readonly fd: number;
  /** Kernel link id and the id of the program it currently runs. */
  readonly id: number;
  readonly progId: number;
  /** For a cgroup link, the id of the cgroup it is attached to (cgroupId() of its
   *  directory); 0n for other links and once the link is detached or its cgroup gone. */
  readonly cgroupId: bigint;
  /** bpf_link__pin: the link (and its attachment) outlives this process. */
  pin(path: string): void;
  /** Removes the pin made by pin() or opened by openPinned() ('EINVAL' if neither);
   *  the attachment ends when the last fd closes. */
  unpin(): void;
  /** Atomically swaps the program behind the link (BPF_LINK_UPDATE): no gap. */
  update(program: BpfProgram): void;
  /** Detaches now (BPF_LINK_DETACH), even if pinned or held elsewhere. */
  detach(): void;
  close(): void;
}

export interface MapInfo {
  type: string;        // libbpf map type name, e.g. 'hash', 'percpu_array', 'sockhash'
  keySize: number;
  valueSize: number;
  maxEntries: number;
  id: number;
  name: string;
}

export const BPF_ANY: 0;
export const BPF_NOEXIST: 1;
export const BPF_EXIST: 2;

export class BpfMap implements MapInfo {
  /** Opens a pinned map (bpf_obj_get) without loading any object; 'EINVAL' if the pin
   *  is not a map. */
  static openPinned(path: string): BpfMap;
  readonly type: string;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly id: number;
  readonly name: string;
  readonly fd: number;
  /** Value for `key`, or null when absent (ENOENT is not an error here). For per-CPU
   *  maps the Buffer holds numPossibleCpus() values of `valueSize` rounded up to 8. */
  lookup(key: Buffer): Buffer | null;
  /** Per-CPU maps only (NativeError 'EINVAL' otherwise): one Buffer of `valueSize`
   *  bytes per possible CPU. */
  lookupPerCpu(key: Buffer): Buffer[] | null;
  /** `value` is sized like lookup()'s result (all CPUs' slots for per-CPU maps). A full
   *  hash map gives 'E2BIG'; BPF_NOEXIST on a present key 'EEXIST'; BPF_EXIST on an
   *  absent key 'ENOENT'. */
  update(key: Buffer, value: Buffer, flags?: 0 | 1 | 2): void;
  /** Returns false when the key was absent. */
  delete(key: Buffer): boolean;
  /** Every key (bpf_map_get_next_key walk). */
  keys(): Buffer[];
  /** Every entry; uses BPF_MAP_LOOKUP_BATCH where the map type has it, else a walk. */
  entries(): Array<[Buffer, Buffer]>;
  /** BPF_MAP_UPDATE_BATCH where supported and flags is BPF_ANY (the kernel's batch
   *  update has no NOEXIST/EXIST), else one update per entry. On failure the entries
   *  before the failing one may have been written. */
  updateBatch(keys: Buffer[], values: Buffer[], flags?: 0 | 1 | 2): void;
  /** BPF_MAP_DELETE_BATCH where supported, else one delete per key. Unlike delete(), an
   *  absent key is an error ('ENOENT'); keys before it are already deleted. */
  deleteBatch(keys: Buffer[]): void;
  /** Pins the map at `path` (on bpffs). */
  pin(path: string): void;
  /** Removes the pin at `path` (unlink). */
  unpin(path: string): void;
  close(): void;
}
