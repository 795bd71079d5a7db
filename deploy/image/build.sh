#!/usr/bin/env bash
# Build the permd container image (Containerfile at the repository root) from
# a release binary that already exists, with buildah and no registry.
#
#   deploy/image/build.sh [PATH/TO/permd]
#
# The binary defaults to ${CARGO_TARGET_DIR:-$HOME/.cache/permd-target}/release/permd.
# Environment:
#   IMAGE           repository, default localhost/permd
#   TAG             default: version in Cargo.toml (must equal `permd --version`)
#   STORAGE_DRIVER  default vfs (works unprivileged-ish and without overlay support)
#   STRIP           1 (default): copy with --strip-debug (keeps symbol names for
#                   backtraces, drops DWARF); 0: copy the binary as it is
#
# Prints the image reference, id and size. Needs: buildah, ldd, strip (binutils),
# and Debian's ca-certificates (/etc/ssl/certs/ca-certificates.crt).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

bin=${1:-${CARGO_TARGET_DIR:-$HOME/.cache/permd-target}/release/permd}
image=${IMAGE:-localhost/permd}
driver=${STORAGE_DRIVER:-vfs}
strip_debug=${STRIP:-1}
ca_bundle=/etc/ssl/certs/ca-certificates.crt

die() { echo "build.sh: $*" >&2; exit 1; }

[[ -x $bin ]] || die "no executable binary at $bin (build it with cargo build --release first)"
[[ -s $ca_bundle ]] || die "$ca_bundle missing: apt-get install ca-certificates"
command -v buildah >/dev/null || die "buildah not installed: apt-get install buildah"

version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$repo/Cargo.toml" | head -n1)
[[ -n $version ]] || die "no version in $repo/Cargo.toml"
bin_version=$(timeout 10 "$bin" --version | awk '{print $2}')
[[ $bin_version == "$version" ]] ||
	die "$bin says version '$bin_version' but Cargo.toml says '$version': stale binary?"
revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
if [[ $revision != unknown ]] && [[ -n $(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
	revision="$revision-dirty"
fi
tag=${TAG:-$version}
ref="$image:$tag"
# Image timestamps from the commit, so that rebuilding the same inputs gives
# the same image (SOURCE_DATE_EPOCH wins when set).
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}

start=$(date +%s.%N)
ctx=$(mktemp -d "${TMPDIR:-/tmp}/permd-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
root=$ctx/rootfs
mkdir -p "$root"

# Merged /usr like the build host (Debian 12: /lib -> usr/lib, /lib64 -> usr/lib64),
# so the paths ldd prints and the ELF interpreter path resolve in the image.
for d in lib lib64; do
	if [[ -L /$d ]]; then
		target=$(readlink "/$d")
		mkdir -p "$root/${target#/}"
		ln -s "${target#/}" "$root/$d"
	fi
done

# Exactly the shared objects the dynamic loader resolves, plus the loader
# itself, each copied (symlinks followed) to the path ldd names.
mapfile -t libs < <(timeout 10 ldd "$bin" | awk '
	/not found/ { print "MISSING " $1; next }
	$2 == "=>" && $3 ~ /^\// { print $3; next }
	$1 ~ /^\// { print $1 }' | awk '!seen[$0]++')
[[ ${#libs[@]} -gt 0 ]] || die "ldd found no libraries in $bin (static? then none are needed; adjust this script)"
interp=$(readelf -l "$bin" | sed -n 's/.*\[Requesting program interpreter: \(.*\)\]/\1/p')
[[ -n $interp && " ${libs[*]} " != *" $interp "* ]] && libs+=("$interp")
for lib in "${libs[@]}"; do
	[[ $lib == MISSING* ]] && die "ldd: ${lib#MISSING } not found"
	mkdir -p "$root$(dirname "$lib")"
	[[ -e $root$lib ]] || cp -L "$lib" "$root$lib"
done

install -d -m 0755 "$root/usr/local/bin" "$root/etc/ssl/certs"
if [[ $strip_debug == 1 ]]; then
	strip --strip-debug -o "$root/usr/local/bin/permd" "$bin"
	chmod 0755 "$root/usr/local/bin/permd"
else
	install -m 0755 "$bin" "$root/usr/local/bin/permd"
fi
install -m 0644 "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
printf '%s\n' \
	'root:x:0:0:root:/root:/sbin/nologin' \
	'permd:x:65532:65532:permd:/nonexistent:/sbin/nologin' >"$root/etc/passwd"
printf '%s\n' 'root:x:0:' 'permd:x:65532:' >"$root/etc/group"
printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$root/etc/nsswitch.conf"
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf"
install -d -m 1777 "$root/tmp"

# The staged tree must run: the binary through the image's own loader and
# libraries only (no host library path), as a quick check before building.
libpath=$(for lib in "${libs[@]}"; do dirname "$root$lib"; done | sort -u | paste -sd:)
"$root$interp" --library-path "$libpath" --inhibit-cache \
	"$root/usr/local/bin/permd" --version >/dev/null ||
	die "staged binary does not start with the staged libraries"

old_id=$(buildah --storage-driver "$driver" images -q --no-trunc "$ref" 2>/dev/null || true)

echo "building $ref (revision $revision) from $bin; libraries: ${libs[*]}"
buildah --storage-driver "$driver" bud \
	--isolation chroot \
	--layers=false \
	--timestamp "$epoch" \
	--build-arg "VERSION=$version" \
	--build-arg "REVISION=$revision" \
	-f "$repo/Containerfile" \
	-t "$ref" \
	"$ctx"

new_id=$(buildah --storage-driver "$driver" images -q --no-trunc "$ref")
# A rebuild leaves the previous image untagged; drop it (vfs stores full copies).
if [[ -n $old_id && $old_id != "$new_id" ]]; then
	buildah --storage-driver "$driver" rmi "$old_id" >/dev/null 2>&1 || true
fi

end=$(date +%s.%N)
size=$(buildah --storage-driver "$driver" images --format '{{.Size}}' "$ref")
printf 'image %s\nid    %s\nsize  %s\ntime  %.1fs\n' "$ref" "${new_id#sha256:}" "$size" "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')"
