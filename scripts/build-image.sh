#!/usr/bin/env bash
# Builds the weft image (deploy/Dockerfile) daemonless with buildah, without Docker Hub.
# Run as root from anywhere; see --help.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROG="scripts/build-image.sh"

usage() {
  cat <<EOF
Usage: $PROG [options]

Builds the image deploy/*.yaml run (deploy/Dockerfile) with buildah: no Docker daemon, and
no Docker Hub. Without --base, the base of both build stages is made here:

  1. localhost/weft-base:<suite>   debootstrap --variant=minbase <suite> from the Debian
                                   mirror apt already uses (/etc/apt/sources.list*), without
                                   docs, man pages and translations (as Debian's -slim
                                   images), imported as an image. Made once, then reused
                                   (--rebuild-base).
  2. localhost/weft-node:<version> that image plus this host's Node (>= 20) with npm and
                                   Node's headers (npm_config_nodedir is set so that node-gyp
                                   uses them). Made once per Node version.
  3. the image (--tag)             buildah bud -f deploy/Dockerfile --build-arg BASE=<2>.
                                   Its RUN steps use apt (the mirror above) and the npm
                                   registry, so the build needs those two, nothing else.

Images live in their own container storage (--store), not in /var/lib/containers. Use
them with the same flags this script prints at the end, e.g.
  podman --root STORE/storage --runroot RUNROOT run --rm weft:dev --version

Options:
  --base IMAGE        base image for both stages instead of steps 1-2 (e.g.
                      node:20-bookworm-slim: it must have Debian bookworm, node and npm)
  --tag NAME          image name (default: weft:dev)
  --store DIR         container storage for the base images, the layer cache and the
                      image (default: \$WEFT_IMAGE_STORE or /var/tmp/weft-image)
  --runroot DIR       container run state (default: /run/weft-image-<hash of --store>)
  --storage-driver D  overlay (default, or \$WEFT_IMAGE_STORAGE_DRIVER) or vfs (slower, for filesystems overlay
                      cannot sit on)
  --isolation TYPE    buildah RUN isolation: oci (default, runc) or chroot
  --network MODE      network of the RUN steps: host (default) or private
  --mirror URL        Debian mirror for debootstrap (default: the first deb.* URI in
                      /etc/apt/sources.list*, else http://deb.debian.org/debian)
  --suite NAME        Debian suite of the local base (default: bookworm; the Dockerfile's
                      package names are bookworm's)
  --node PATH         the Node binary to put into the local base (default: node on PATH);
                      its prefix must hold lib/node_modules/npm and include/node
  --ca-file FILE      PEM bundle given to the build as the build_ca secret, which Node
                      trusts for npm and node-gyp downloads (default: \$NODE_EXTRA_CA_CERTS,
                      else npm's cafile setting; for TLS-intercepting proxies). Not
                      stored in the image.
  --archive FILE      also write the image as a docker-archive tarball, for
                      'kind load image-archive FILE' or 'ctr -n k8s.io images import FILE'
  --rebuild-base      make steps 1-2 again even if the images exist
  --no-cache          step 3 from scratch: drop the layer cache and the previous image
                      first, then run every Dockerfile step once
  --print-store       print the storage flags for podman/buildah (one per line) and exit,
                      e.g. podman \$(scripts/build-image.sh --print-store) images
  -q, --quiet         only progress lines and errors (build output goes to a log file
                      that is printed if the build fails)
  -h, --help          this text

Cleanup: temporary directories and working containers this script makes are removed on
exit, also on failure or Ctrl-C. The store keeps the two base images, the layer cache
(localhost/weft-build:cache, the Dockerfile's build stage, tagged so that a rebuild after
a source edit reruns only 'npm run build'), and the image; superseded images are pruned
after each build. Remove everything with:
  podman --root STORE/storage --runroot RUNROOT rmi -a -f; rm -rf STORE RUNROOT
(not 'podman system reset', which also deletes the host's podman network definitions)
EOF
}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

BASE=""; TAG="weft:dev"; STORE="${WEFT_IMAGE_STORE:-/var/tmp/weft-image}"; RUNROOT=""
DRIVER="${WEFT_IMAGE_STORAGE_DRIVER:-overlay}"; ISOLATION="oci"; NETWORK="host"; MIRROR=""; SUITE="bookworm"
NODE_BIN=""; CA_FILE="${NODE_EXTRA_CA_CERTS:-}"; CA_FROM_ENV=1; ARCHIVE=""
REBUILD_BASE=0; NO_CACHE=0; QUIET=0; PRINT_STORE=0

need_arg() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi; }
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --base) need_arg "$@"; BASE="$2"; shift 2 ;;
    --tag) need_arg "$@"; TAG="$2"; shift 2 ;;
    --store) need_arg "$@"; STORE="$2"; shift 2 ;;
    --runroot) need_arg "$@"; RUNROOT="$2"; shift 2 ;;
    --storage-driver) need_arg "$@"; DRIVER="$2"; shift 2 ;;
    --isolation) need_arg "$@"; ISOLATION="$2"; shift 2 ;;
    --network) need_arg "$@"; NETWORK="$2"; shift 2 ;;
    --mirror) need_arg "$@"; MIRROR="$2"; shift 2 ;;
    --suite) need_arg "$@"; SUITE="$2"; shift 2 ;;
    --node) need_arg "$@"; NODE_BIN="$2"; shift 2 ;;
    --ca-file) need_arg "$@"; CA_FILE="$2"; CA_FROM_ENV=0; shift 2 ;;
    --archive) need_arg "$@"; ARCHIVE="$2"; shift 2 ;;
    --rebuild-base) REBUILD_BASE=1; shift ;;
    --no-cache) NO_CACHE=1; shift ;;
    --print-store) PRINT_STORE=1; shift ;;
    -q|--quiet) QUIET=1; shift ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

case "$DRIVER" in overlay|vfs) ;; *) die "--storage-driver: expected overlay or vfs, got '$DRIVER'" ;; esac
case "$ISOLATION" in oci|chroot) ;; *) die "--isolation: expected oci or chroot, got '$ISOLATION'" ;; esac
case "$NETWORK" in host|private) ;; *) die "--network: expected host or private, got '$NETWORK'" ;; esac
if [ "$PRINT_STORE" = 0 ]; then
  [ "$(id -u)" = 0 ] || die "run as root (buildah/podman with a system store, debootstrap)"
  command -v buildah >/dev/null || die "buildah is not installed (apt-get install buildah; scripts/install-deps.sh does)"
  [ -f "$ROOT/deploy/Dockerfile" ] || die "$ROOT/deploy/Dockerfile is missing"
fi
# No --ca-file and no NODE_EXTRA_CA_CERTS: the CA file host npm is configured with, if any.
if [ -z "$CA_FILE" ] && [ "$PRINT_STORE" = 0 ] && command -v npm >/dev/null; then
  CA_FILE="$(npm config get cafile 2>/dev/null || true)"
  case "$CA_FILE" in ""|null|undefined) CA_FILE="" ;; esac
fi
if [ -n "$CA_FILE" ] && [ ! -r "$CA_FILE" ]; then
  [ "$CA_FROM_ENV" = 1 ] || die "--ca-file $CA_FILE is not readable"
  CA_FILE=""   # a stale NODE_EXTRA_CA_CERTS is not worth failing for
fi
if [ -n "$ARCHIVE" ]; then
  mkdir -p "$(dirname "$ARCHIVE")" || die "cannot create the directory of --archive $ARCHIVE"
  ARCHIVE="$(cd "$(dirname "$ARCHIVE")" && pwd)/$(basename "$ARCHIVE")"
fi

mkdir -p "$STORE" || die "cannot create --store $STORE"
STORE="$(cd "$STORE" && pwd)"
[ -n "$RUNROOT" ] || RUNROOT="/run/weft-image-$(printf '%s' "$STORE" | cksum | cut -d' ' -f1)"
STORAGE_FLAGS=(--root "$STORE/storage" --runroot "$RUNROOT" --storage-driver "$DRIVER")
if [ "$PRINT_STORE" = 1 ]; then printf '%s\n' "${STORAGE_FLAGS[@]}"; exit 0; fi
bh() { buildah "${STORAGE_FLAGS[@]}" "$@"; }

# ---- cleanup of everything temporary, on any exit
TMP=""; CONTAINERS=(); CHILD=""; BEFORE=""
containers_now() { bh containers --quiet --noheading 2>/dev/null | sort; }
cleanup() {
  local rc=$?
  set +e
  trap - INT TERM
  # A step still running (interrupted): stop its whole process group (debootstrap's dpkg,
  # buildah's RUN), give it 15s, then kill it.
  if [ -n "$CHILD" ] && kill -0 "$CHILD" 2>/dev/null; then
    kill -TERM -- "-$CHILD" 2>/dev/null
    for _ in $(seq 30); do kill -0 "$CHILD" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$CHILD" 2>/dev/null
  fi
  for c in "${CONTAINERS[@]}"; do bh rm "$c" >/dev/null 2>&1; done
  # Working containers an interrupted or failed build left (only those that appeared
  # while this script ran).
  if [ $rc -ne 0 ] && [ -n "$BEFORE" ]; then
    comm -13 "$TMP/containers.before" <(containers_now) | while read -r c; do bh rm "$c" >/dev/null 2>&1; done
  fi
  if [ -n "$TMP" ] && [ -d "$TMP" ]; then
    # debootstrap may leave /proc etc. mounted in the target after a failure.
    for m in proc sys dev/pts dev; do umount -l "$TMP/rootfs/$m" >/dev/null 2>&1; done
    rm -rf --one-file-system "$TMP"
  fi
  [ $rc -eq 0 ] || printf '%s: failed (exit %d); temporary files and containers removed\n' "$PROG" "$rc" >&2
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
TMP="$(mktemp -d "${TMPDIR:-/var/tmp}/weft-image.XXXXXX")"
containers_now >"$TMP/containers.before"; BEFORE=1

# Runs a step in its own process group (so that an interrupt reaches the traps at once and
# cleanup can stop the step); with --quiet its output goes to a log shown only on failure.
run() {
  local rc=0
  if [ "$QUIET" = 1 ]; then
    setsid "$@" >"$TMP/step.log" 2>&1 </dev/null &
  else
    setsid "$@" >&2 </dev/null &
  fi
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=""
  if [ $rc -ne 0 ] && [ "$QUIET" = 1 ]; then tail -n 60 "$TMP/step.log" >&2; fi
  return $rc
}
image_exists() { bh inspect --type image "$1" >/dev/null 2>&1; }
START=$SECONDS
elapsed() { printf '%ss' $((SECONDS - START)); }

# ---- 1-2: the local base images
apt_mirror() {
  local f uri
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822 "URIs: <uri>" and one-line "deb [opts] <uri> <suite> ..." both; the Debian
    # archive only (not -security, not third-party repositories).
    uri="$(sed -n -e 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' \
                  -e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\).*/\2/p' "$f" \
           | grep -E '/debian/?$' | head -n1 || true)"
    [ -n "$uri" ] && { printf '%s\n' "${uri%/}"; return; }
  done
  printf '%s\n' "http://deb.debian.org/debian"
}

make_debian_base() {  # $1: image name
  command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap), or pass --base IMAGE"
  [ -n "$MIRROR" ] || MIRROR="$(apt_mirror)"
  say "debootstrap --variant=minbase $SUITE from $MIRROR (about 1.5 minutes)"
  run debootstrap --variant=minbase "$SUITE" "$TMP/rootfs" "$MIRROR" \
    || die "debootstrap failed (mirror $MIRROR reachable? try --mirror URL)"
  # Slim, like Debian's -slim images: no apt caches, and dpkg leaves out documentation
  # (but the copyright files), man pages and translations, now and in later layers.
  rm -rf "$TMP/rootfs/var/cache/apt/archives/"*.deb "$TMP/rootfs/var/cache/apt/"*.bin "$TMP/rootfs/var/lib/apt/lists/"* 2>/dev/null || true
  cat >"$TMP/rootfs/etc/dpkg/dpkg.cfg.d/weft-slim" <<'CFG'
# scripts/build-image.sh (weft): keep images small
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CFG
  find "$TMP/rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$TMP/rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$TMP/rootfs/usr/share/man/"* "$TMP/rootfs/usr/share/info/"* "$TMP/rootfs/usr/share/locale/"*
  say "importing the root filesystem as $1 ($(du -sh "$TMP/rootfs" | cut -f1))"
  tar -C "$TMP/rootfs" --numeric-owner -cf "$TMP/rootfs.tar" . || die "cannot archive $TMP/rootfs"
  rm -rf --one-file-system "$TMP/rootfs"
  local c
  c="$(bh from scratch)" || die "buildah from scratch failed"
  CONTAINERS+=("$c")
  run buildah "${STORAGE_FLAGS[@]}" add "$c" "$TMP/rootfs.tar" / || die "buildah add of the root filesystem failed"
  rm -f "$TMP/rootfs.tar"
  bh config --cmd /bin/bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --label "org.opencontainers.image.description=debootstrap --variant=minbase $SUITE $MIRROR" "$c"
  run buildah "${STORAGE_FLAGS[@]}" commit --rm "$c" "$1" || die "buildah commit $1 failed"
  CONTAINERS=()
}

make_node_base() {  # $1: debian base, $2: image name, $3: node binary, $4: its prefix
  local prefix="$4" rel f list="$TMP/node-files"
  : >"$list"
  # The node binary, npm/npx/corepack (the bin links and their packages), and the headers
  # node-gyp compiles the addon against.
  for rel in bin/node bin/npm bin/npx bin/corepack lib/node_modules/npm lib/node_modules/corepack include/node; do
    [ -e "$prefix/$rel" ] && printf '%s\n' "${rel}" >>"$list"
  done
  for f in bin/npm lib/node_modules/npm include/node/node_api.h; do
    [ -e "$prefix/$f" ] || die "$prefix/$f is missing: $3 is not a complete Node install (need npm and the headers), or pass --base IMAGE"
  done
  say "adding $3 ($("$3" --version)) with npm and headers under $prefix to $2"
  tar -C "$prefix" -cf "$TMP/node.tar" -T "$list" || die "cannot archive Node from $prefix"
  local c
  c="$(bh from "$1")" || die "buildah from $1 failed"
  CONTAINERS+=("$c")
  run buildah "${STORAGE_FLAGS[@]}" add "$c" "$TMP/node.tar" "$prefix/" || die "buildah add of Node failed"
  rm -f "$TMP/node.tar"
  # Node's own runtime libraries (ldd $3) must be in the Debian base already: prove it.
  local v
  v="$(bh run --isolation "$ISOLATION" --network none "$c" -- sh -c 'node --version && npm --version' 2>&1)" \
    || die "Node does not run in $1 (a shared library missing? ldd $3): $v"
  say "node $(printf '%s' "$v" | head -n1) and npm $(printf '%s' "$v" | tail -n1) run in the base"
  bh config --env "npm_config_nodedir=$prefix" \
    --label "org.opencontainers.image.description=$1 plus the host's Node $("$3" --version) at $prefix" "$c"
  run buildah "${STORAGE_FLAGS[@]}" commit --rm "$c" "$2" || die "buildah commit $2 failed"
  CONTAINERS=()
}

if [ -z "$BASE" ]; then
  [ -n "$NODE_BIN" ] || NODE_BIN="$(command -v node || true)"
  if [ -z "$NODE_BIN" ] || [ ! -x "$NODE_BIN" ]; then die "no node binary (give --node PATH, or --base IMAGE)"; fi
  NODE_BIN="$(readlink -f "$NODE_BIN")"
  NODE_VERSION="$("$NODE_BIN" --version)" || die "$NODE_BIN --version failed"
  major="${NODE_VERSION#v}"; major="${major%%.*}"
  [ "$major" -ge 20 ] 2>/dev/null || die "$NODE_BIN is Node $NODE_VERSION; weft needs >= 20 (package.json engines)"
  NODE_PREFIX="$(dirname "$(dirname "$NODE_BIN")")"
  DEBIAN_BASE="localhost/weft-base:$SUITE"
  NODE_BASE="localhost/weft-node:${NODE_VERSION#v}-$SUITE"
  if [ "$REBUILD_BASE" = 1 ] || ! image_exists "$DEBIAN_BASE"; then
    make_debian_base "$DEBIAN_BASE"
    REBUILD_BASE=1   # the Node image sits on it
  else
    say "base $DEBIAN_BASE exists (cached; --rebuild-base to make it again)"
  fi
  if [ "$REBUILD_BASE" = 1 ] || ! image_exists "$NODE_BASE"; then
    make_node_base "$DEBIAN_BASE" "$NODE_BASE" "$NODE_BIN" "$NODE_PREFIX"
  else
    say "base $NODE_BASE exists (cached)"
  fi
  BASE="$NODE_BASE"
fi

# ---- 3: the image
prune() {
  local dangling
  for _ in $(seq 30); do
    dangling="$(bh images --filter dangling=true --noheading --quiet 2>/dev/null | sort -u || true)"
    [ -n "$dangling" ] || break
    # shellcheck disable=SC2086
    bh rmi $dangling >/dev/null 2>&1 || break
  done
}
if [ "$NO_CACHE" = 1 ]; then
  # Not buildah's --no-cache: the second bud below would then build the build stage again.
  say "--no-cache: removing the layer cache and the previous $TAG"
  bh rmi localhost/weft-build:cache "$TAG" >/dev/null 2>&1 || true
  prune
fi
BUD=(bud --file "$ROOT/deploy/Dockerfile" --ignorefile "$ROOT/deploy/Dockerfile.dockerignore"
     --build-arg "BASE=$BASE" --isolation "$ISOLATION" --network "$NETWORK"
     --layers --force-rm --format docker)
[ -z "$CA_FILE" ] || BUD+=(--secret "id=build_ca,src=$CA_FILE")
say "building the build stage (tagged localhost/weft-build:cache) on $BASE"
run buildah "${STORAGE_FLAGS[@]}" "${BUD[@]}" --target build --tag localhost/weft-build:cache "$ROOT" \
  || die "the build stage of deploy/Dockerfile failed (output above)"
say "building $TAG ($(elapsed) so far)"
run buildah "${STORAGE_FLAGS[@]}" "${BUD[@]}" --tag "$TAG" "$ROOT" || die "the runtime stage of deploy/Dockerfile failed (output above)"

# Superseded images: the previous image and build-stage cache lost their tags to the new
# ones; remove them and the untagged layers only they used (dangling = no name and no
# child image, so each pass frees the parents of the last; the live cache has children).
prune

id="$(bh inspect --type image --format '{{.FromImageID}}' "$TAG")"
size="$(bh images --noheading --format '{{.Size}}' "$TAG" | head -n1)"
say "built $TAG (${id:0:12}, $size) in $(elapsed)"

if [ -n "$ARCHIVE" ]; then
  # Named as given (weft:dev): the archive's RepoTags then hold docker.io/library/weft:dev,
  # the name containerd (and so the kubelet, for `image: weft:dev`) looks up.
  rm -f "$ARCHIVE"
  run buildah "${STORAGE_FLAGS[@]}" push "$TAG" "docker-archive:$ARCHIVE:$TAG" || die "writing $ARCHIVE failed"
  say "wrote $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1)): kind load image-archive $ARCHIVE, or ctr -n k8s.io images import $ARCHIVE"
fi

say "use it: podman --root $STORE/storage --runroot $RUNROOT --storage-driver $DRIVER run --rm $TAG --version"
