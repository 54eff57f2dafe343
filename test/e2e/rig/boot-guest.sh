#!/usr/bin/env bash
# Boot the e2e guest by hand (the tests do the same from test/e2e/harness.ts).
#
#   boot-guest.sh [RIG_ENV] SOCK|builtin|none [extra kernel args...]
#
# RIG_ENV defaults to .e2e-cache/rig.env at the project root (written by provision.sh).
#   SOCK     a vhost-user backend already listening there (QEMU connects at start and exits at
#            once if nobody listens): the rig's generic vhost-user device, virtio-id 3.
#   builtin  QEMU's own virtio-serial-pci instead, as a reference: console port 0 and a port
#            'org.e2e.port1', their host sides written to $OUT_DIR/builtin-port{0,1}.out.
#   none     no console device at all.
# The guest's serial console (ttyS0) is this process's stdin/stdout: guest-init runs a command
# loop there (`<id> <command>` per line; add e2e.echo=1 to see what you type).
# env: MAX_PORTS (1 -> num_vqs 4; num_vqs = 2*(MAX_PORTS+1)), NUM_VQS (overrides; 2 = single port,
#      no MULTIPORT), CONFIG_SIZE (12), VQ_SIZE, MEM (256M), QEMU_EXTRA, OUT_DIR (.), DRYRUN=1.
# TCG only: /dev/kvm on these machines is nested and Debian kernels die on it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
RIG_ENV=$ROOT/.e2e-cache/rig.env
case "${1:-}" in *.env) RIG_ENV=$1; shift ;; esac
SOCK=${1:?usage: boot-guest.sh [RIG_ENV] SOCK|builtin|none [kernel args]}
shift
# shellcheck disable=SC1090
. "$RIG_ENV"
MEM=${MEM:-256M}
NUM_VQS=${NUM_VQS:-$(( 2 * (${MAX_PORTS:-1} + 1) ))}
OUT_DIR=${OUT_DIR:-.}

args=(
  -L "$FIRMWARE"
  -machine "q35,accel=tcg,memory-backend=mem" -cpu max -smp 1 -m "$MEM"
  -object "memory-backend-memfd,id=mem,size=$MEM,share=on"
  -nodefaults -no-user-config -display none -no-reboot -serial stdio
  -kernel "$KERNEL" -initrd "$INITRD" -append "console=ttyS0 panic=-1 quiet $*"
)
case "$SOCK" in
  none) ;;
  builtin)
    args+=(-device virtio-serial-pci,id=vser0,max_ports=2
           -chardev "file,id=ref0,path=$OUT_DIR/builtin-port0.out"
           -device virtconsole,bus=vser0.0,nr=0,chardev=ref0
           -chardev "file,id=ref1,path=$OUT_DIR/builtin-port1.out"
           -device virtserialport,bus=vser0.0,nr=1,chardev=ref1,name=org.e2e.port1) ;;
  *)
    dev="$DEVICE,chardev=vu0,virtio-id=3,num_vqs=$NUM_VQS,config_size=${CONFIG_SIZE:-12}"
    [ -n "${VQ_SIZE:-}" ] && dev+=",vq_size=$VQ_SIZE"
    args+=(-chardev "socket,id=vu0,path=$SOCK" -device "$dev") ;;
esac
# shellcheck disable=SC2206
[ -n "${QEMU_EXTRA:-}" ] && args+=($QEMU_EXTRA)
if [ -n "${DRYRUN:-}" ]; then printf '%q ' "$QEMU" "${args[@]}"; echo; exit 0; fi
exec "$QEMU" "${args[@]}"
