# QEMU device selection for the e2e rig (x86_64-softmmu, QEMU >= 10.2), used with
# --without-default-devices --with-devices-x86_64=vu-minimal (provision.sh copies this file into
# the source tree's configs/devices/x86_64-softmmu/). Only what the tests boot, plus what it takes
# to link such a small build.
CONFIG_Q35=y
CONFIG_VIRTIO_PCI=y
# QEMU's own virtio-serial-pci: the reference the guest side of the rig is checked against.
CONFIG_VIRTIO_SERIAL=y
# The generic vhost-user front-end (vhost-user-test-device-pci). It defaults to y only in a
# default-devices build, so a minimal build has to ask for it.
CONFIG_VHOST_USER_TEST=y
# Link fixes for 10.2.x without default devices: q35 pulls in ACPI CXL table code
# (hw/acpi/cxl.c), which calls into hw/cxl/cxl-host.c, only built with CONFIG_CXL; CXL in turn
# needs the expander bridge, the type-3 memory device (mailbox code refers to it) and the
# PCIe root port base type (else QEMU aborts at start: type 'cxl-rp' is missing its parent).
CONFIG_CXL=y
CONFIG_PXB=y
CONFIG_CXL_MEM_DEVICE=y
CONFIG_PCIE_PORT=y
