#!/usr/bin/env bash
# Provision the end-to-end rig: a real QEMU and a real Linux guest, built from Debian packages only.
#
#   bash test/e2e/rig/provision.sh [CACHE_DIR]      (default: .e2e-cache in the current directory)
#
# Result: CACHE_DIR/rig.env (QEMU, QEMU_VERSION, DEVICE, KERNEL, KERNEL_VERSION, INITRD, FIRMWARE),
# read by test/e2e/harness.ts and boot-guest.sh.
#
# What comes from where (all through a private apt configuration under CACHE_DIR/apt, so the
# system's apt sources are never touched):
#   QEMU       Debian's *source* package, newest version >= 10.2 that the mirror really serves
#              (forky/sid), built unpatched as a minimal x86_64-softmmu; from 10.2 on the generic
#              vhost-user front-end is `vhost-user-test-device-pci` and is user-creatable.
#              If none can be fetched (or QEMU_FROM=trixie): trixie's 10.0 with the one-line
#              `user_creatable = false` removed, device `vhost-user-device-pci`.
#   meson      trixie's .deb, extracted, used through PYTHONPATH (QEMU 10 needs meson >= 1.5).
#   firmware   trixie's seabios + qemu-system-data .debs, extracted (Debian's +ds source has no blobs).
#   kernel     trixie's linux-image-amd64 (6.12; virtio_pci and virtio_console are built in).
#   initramfs  trixie's busybox-static + guest-init (beside this script).
# Host packages it needs are apt-get installed when missing (dpkg-dev provides dpkg-source, which
# `apt-get source` uses to unpack).
#
# Cache: every artefact's name carries its version (QEMU source, kernel package, busybox package,
# a hash of guest-init), so a second run with unchanged inputs returns at once without the network,
# and a changed guest-init only rebuilds the initramfs. Delete CACHE_DIR to start over.
set -euo pipefail
shopt -s inherit_errexit
# One compound command: bash parses it whole before running, so editing this file while it runs
# (a long build) cannot make the running copy read half-changed lines.
{
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=$(mkdir -p "${1:-.e2e-cache}" && cd "${1:-.e2e-cache}" && pwd)
cd "$CACHE"
log() { echo "[provision $(date +%T)] $*" >&2; }
START=$(date +%s)

# The initramfs is the only part keyed by a file of ours; everything else is keyed by Debian versions.
INIT_HASH=$(cat "$HERE/guest-init" | md5sum | cut -c1-12)
if [ -f rig.env ]; then
  # shellcheck disable=SC1091
  ( . ./rig.env; [ -x "$QEMU" ] && [ -f "$KERNEL" ] && [ -f "$INITRD" ] && [ "$INIT_HASH" = "${INIT_HASH_BUILT:-}" ] ) \
    && { echo "rig ready (cached): $CACHE/rig.env"; exit 0; }
fi

# --- host tools ---------------------------------------------------------------------------------
need=()
for p in dpkg-dev libglib2.0-dev pkg-config cpio ninja-build python3 python3-venv gcc libc6-dev make zstd xz-utils gzip; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing host packages: ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- private apt configurations (same mirror as the system, other suites) -----------------------
mirror=$(grep -hoE 'https?://[^ ]+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
         | grep -m1 -E '/debian/?$' || true)
mirror=${DEBIAN_MIRROR:-${mirror:-http://deb.debian.org/debian}}
aptcfg() {  # aptcfg NAME SOURCES -> apt options selecting that private configuration
  local d="$CACHE/apt/$1"
  mkdir -p "$d"/{lists/partial,cache/archives/partial}
  printf '%s\n' "$2" > "$d/sources.list"
  # Sandbox user root: the cache lives in a folder the _apt user may not be able to write.
  echo "-o Dir::Etc::SourceList=$d/sources.list -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=$d/lists -o Dir::Cache=$d/cache -o APT::Sandbox::User=root"
}
TRIXIE=$(aptcfg trixie "deb $mirror trixie main
deb-src $mirror trixie main")
NEWER=$(aptcfg newer "deb-src $mirror forky main
deb-src $mirror sid main")
apt_update() {  # once per run (a stamp file: callers run in subshells), only when fetching
  [ -f "apt/updated.$$" ] && return 0
  rm -f apt/updated.*
  log "apt-get update (private: trixie, forky/sid sources) from $mirror"
  # shellcheck disable=SC2086
  apt-get $TRIXIE update -qq >/dev/null && apt-get $NEWER update -qq >/dev/null
  touch "apt/updated.$$"
}
deb_version() {  # deb_version PKG -> trixie's candidate version (from the recorded choice if any)
  if [ -f "versions/$1" ]; then cat "versions/$1"; return; fi
  apt_update
  # shellcheck disable=SC2086
  apt-cache $TRIXIE policy "$1" | sed -n 's/^ *Candidate: //p' > "versions/$1"
  [ -s "versions/$1" ] || { echo "package $1 not found in trixie" >&2; exit 1; }
  cat "versions/$1"
}
extract_deb() {  # extract_deb PKG -> folder x/PKG_VERSION holding the package's files
  local pkg=$1 ver dir
  ver=$(deb_version "$pkg"); dir="x/${pkg}_${ver//:/%}"
  if [ ! -d "$dir" ]; then
    apt_update
    # shellcheck disable=SC2086
    (cd debs && apt-get $TRIXIE download -qq "$pkg=$ver" >/dev/null)
    # apt-get download names the file with the epoch's colon escaped as %3a.
    dpkg-deb -x debs/"${pkg}_${ver/:/%3a}"_*.deb "$dir.tmp" || { echo "cannot extract $pkg $ver" >&2; return 1; }
    mv "$dir.tmp" "$dir"
  fi
  echo "$CACHE/$dir"
}
mkdir -p debs x versions

# --- QEMU source --------------------------------------------------------------------------------
# The chosen source folder is recorded in qemu.src; its device name in qemu.device.
if [ ! -f qemu.src ]; then
  apt_update
  picked=""
  if [ "${QEMU_FROM:-}" != trixie ]; then
    # shellcheck disable=SC2086
    for v in $(apt-cache $NEWER showsrc qemu 2>/dev/null | sed -n 's/^Version: //p' | sort -Vru); do
      up=${v#*:}; up=${up%%[+-]*}
      dpkg --compare-versions "$up" ge 10.2 || continue
      log "trying QEMU source $v"
      # The index can list versions the mirror no longer serves: fall through to the next one.
      # shellcheck disable=SC2086
      if (mkdir -p src && cd src && apt-get $NEWER source -qq "qemu=$v" >/dev/null 2>&1); then picked=$v; break; fi
      log "  not downloadable, trying the next"
    done
  fi
  if [ -n "$picked" ]; then
    echo vhost-user-test-device-pci > qemu.device
  else
    log "no QEMU >= 10.2 source served; using trixie's 10.0 with user_creatable patched out"
    # shellcheck disable=SC2086
    (mkdir -p src && cd src && apt-get $TRIXIE source -qq qemu >/dev/null)
    sed -i 's|^\(\s*\)dc->user_creatable = false;|\1/* user_creatable removed for the e2e rig */|' \
      src/qemu-*/hw/virtio/vhost-user-device.c src/qemu-*/hw/virtio/vhost-user-device-pci.c
    echo vhost-user-device-pci > qemu.device
  fi
  (cd src && ls -d qemu-*/ | head -1 | tr -d '/') > qemu.src
  log "QEMU source: $(cat qemu.src), device $(cat qemu.device)"
fi
SRC=$CACHE/src/$(cat qemu.src)
DEVICE=$(cat qemu.device)
MAK=$SRC/configs/devices/x86_64-softmmu/vu-minimal.mak
if [ "$DEVICE" = vhost-user-test-device-pci ]; then
  cp "$HERE/devices-vu-minimal.mak" "$MAK"
else  # 10.0 has no VHOST_USER_TEST symbol and links without the CXL additions
  printf 'CONFIG_Q35=y\nCONFIG_VIRTIO_PCI=y\nCONFIG_VIRTIO_SERIAL=y\n' > "$MAK"
fi

# --- QEMU build (meson >= 1.5 from trixie's .deb through PYTHONPATH) -----------------------------
BUILD=$CACHE/build-$(cat qemu.src)
if [ ! -x "$BUILD/qemu-system-x86_64" ]; then
  PYTHONPATH=$(extract_deb meson)/usr/lib/python3/dist-packages
  export PYTHONPATH
  mkdir -p "$BUILD" && cd "$BUILD"
  if [ ! -f build.ninja ]; then
    log "configuring QEMU"
    "$SRC/configure" --python=/usr/bin/python3 --target-list=x86_64-softmmu \
      --without-default-features --without-default-devices --with-devices-x86_64=vu-minimal \
      --enable-kvm --enable-tcg --enable-vhost-user --disable-docs --disable-tools \
      --disable-guest-agent --disable-download --disable-werror -Dinstall_blobs=false >configure.log 2>&1 \
      || { tail -30 configure.log >&2; exit 1; }
  fi
  log "building QEMU with $(nproc) jobs (a few minutes)"
  nice ninja -j"$(nproc)" qemu-system-x86_64 >build.log 2>&1 || { tail -30 build.log >&2; exit 1; }
  cd "$CACHE"
fi
QEMU_VERSION=$("$BUILD/qemu-system-x86_64" --version | sed -n '1s/.*version \([^ ]*\).*/\1/p')

# --- firmware -----------------------------------------------------------------------------------
FW=$CACHE/firmware-$(deb_version seabios | tr : %)
if [ ! -f "$FW/bios-256k.bin" ]; then
  mkdir -p "$FW.tmp"
  cp "$(extract_deb seabios)"/usr/share/seabios/bios-256k.bin "$FW.tmp/"
  # linuxboot_dma.bin is what -kernel loads through fw_cfg DMA; the others keep QEMU from warning.
  qsd=$(extract_deb qemu-system-data)/usr/share/qemu
  for f in linuxboot_dma.bin linuxboot.bin kvmvapic.bin multiboot_dma.bin pvh.bin; do
    [ -f "$qsd/$f" ] && cp "$qsd/$f" "$FW.tmp/"
  done
  rm -rf "$FW" && mv "$FW.tmp" "$FW"
fi

# --- guest kernel: the image linux-image-amd64 points at today ----------------------------------
if [ ! -f versions/kernel-image ]; then
  apt_update
  # shellcheck disable=SC2086
  apt-cache $TRIXIE depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\).*/\1/p' | head -1 > versions/kernel-image
fi
IMG=$(cat versions/kernel-image)
KERNEL=$CACHE/${IMG}_$(deb_version "$IMG" | tr : %).vmlinuz
if [ ! -f "$KERNEL" ]; then
  cp "$(extract_deb "$IMG")"/boot/vmlinuz-* "$KERNEL.tmp" && mv "$KERNEL.tmp" "$KERNEL"
  log "guest kernel: $IMG $(deb_version "$IMG")"
fi
KERNEL_VERSION=$(deb_version "$IMG")

# --- initramfs: busybox-static + our /init ------------------------------------------------------
INITRD=$CACHE/initramfs-busybox_$(deb_version busybox-static | tr : %)-init_$INIT_HASH.cpio.gz
if [ ! -f "$INITRD" ]; then
  bb=$(extract_deb busybox-static)
  stage=$(mktemp -d)
  mkdir -p "$stage"/{bin,sbin,proc,sys,dev,tmp}
  if [ -x "$bb/bin/busybox" ]; then cp "$bb/bin/busybox" "$stage/bin/"; else cp "$bb/usr/bin/busybox" "$stage/bin/"; fi
  cp "$HERE/guest-init" "$stage/init"
  chmod 755 "$stage/init" "$stage/bin/busybox"
  (cd "$stage" && find . -print0 | cpio --null -o -H newc --quiet | gzip -6) > "$INITRD.tmp"
  mv "$INITRD.tmp" "$INITRD"
  rm -rf "$stage"
  log "initramfs: $(basename "$INITRD")"
fi

cat > rig.env.tmp <<EOF
QEMU=$BUILD/qemu-system-x86_64
QEMU_VERSION=$QEMU_VERSION
DEVICE=$DEVICE
KERNEL=$KERNEL
KERNEL_VERSION=$KERNEL_VERSION
INITRD=$INITRD
INIT_HASH_BUILT=$INIT_HASH
FIRMWARE=$FW
EOF
mv rig.env.tmp rig.env
log "done in $(( $(date +%s) - START ))s: QEMU $QEMU_VERSION ($DEVICE), kernel $IMG $KERNEL_VERSION"
echo "rig ready: $CACHE/rig.env"
exit 0
}
