#!/usr/bin/env bash
# Installs the system libraries the build links against, from Debian's packages (instant
# when they are there; scripts/run and scripts/install.sh call it):
#   libheif-dev   HEIC and AVIF decoding, AVIF encoding (libheif 1.15 with libde265,
#                 dav1d and libaom), found through pkg-config by libheif-sys;
#   liblcms2-dev  LittleCMS for ICC profiles (lcms2-sys would otherwise compile its
#                 bundled copy);
#   pkg-config    how both are found;
#   nasm          the SIMD code of the JPEG decoder (mozjpeg-sys; plain C without it).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
apt_ensure libheif-dev liblcms2-dev pkg-config nasm
