#!/usr/bin/env bash
# corpus.sh DIR — build a corpus of real photographs for the image pipeline's
# benchmark and manual tests, and print DIR.
#
# The photographs come from Debian's desktop wallpaper packages (freely licensed
# photographs, JPEG/PNG/WebP, from ~1 to ~20 megapixels), fetched with the
# ordinary apt client, so no other network access is needed. Only .deb files are
# downloaded and unpacked with `dpkg -x`; nothing is installed on the machine.
#
# Idempotent: if DIR/.done exists the corpus is reused as is.
set -euo pipefail

DIR=${1:?usage: corpus.sh DIR}
PACKAGES=(mate-backgrounds ukui-wallpapers gnome-backgrounds)

if [[ -f "$DIR/.done" ]]; then
    printf '%s\n' "$DIR"
    exit 0
fi

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# apt-get download writes into the current directory. It fails on a machine
# whose package lists were never fetched: refresh them once and retry.
(
    cd "$work"
    if ! apt-get download "${PACKAGES[@]}" >/dev/null 2>&1; then
        echo "corpus.sh: apt-get download failed, running apt-get update first" >&2
        apt-get update -qq
        apt-get download "${PACKAGES[@]}" >/dev/null
    fi
)

for deb in "$work"/*.deb; do
    dpkg -x "$deb" "$work/root"
done

# Copy every raster photograph; flatten paths and replace spaces so that the
# tools under benchmark get simple file names. Same-named files from different
# packages are disambiguated with a counter.
count=0
while IFS= read -r -d '' f; do
    name=$(basename "$f")
    name=${name// /_}
    dest="$DIR/$name"
    if [[ -e "$dest" ]]; then
        dest="$DIR/${count}_$name"
    fi
    cp "$f" "$dest"
    count=$((count + 1))
done < <(find "$work/root" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' -o -iname '*.webp' \) -print0 | sort -z)

[[ $count -gt 0 ]] || { echo "corpus.sh: no images found in ${PACKAGES[*]}" >&2; exit 1; }
echo "corpus.sh: $count images in $DIR" >&2
touch "$DIR/.done"
printf '%s\n' "$DIR"
