#!/usr/bin/env bash
# The verifier's footprint (watch/README.md, "Footprint"): stack high-water and state sizes from
# the `footprint` bin, code size from the `nw_update` static library, both built with this
# package's release profile (opt-level "s", fat LTO, one codegen unit, panic = abort) on x86_64.
# Twice: as x86_64 builds it (SHA-NI/AVX2 SHA-2 and AVX2 curve arithmetic chosen at run time,
# beside the portable code), and with the portable backends a Cortex-M gets, which can be
# selected here by cfg: compact soft SHA-2 (loops, not unrolled), serial 32-bit field and scalar
# arithmetic.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="$PWD/target"

measure() {
  local name=$1 flags=$2
  echo "== $name${flags:+ (RUSTFLAGS=$flags)}"
  RUSTFLAGS="$flags" cargo build --quiet --locked --release
  RUSTFLAGS="$flags" cargo run --quiet --locked --release --bin footprint
  local dir member
  dir=$(mktemp -d)
  member=$(ar t target/release/libnowatch_ota_watch_footprint.a | grep '^nowatch_ota_watch_footprint-')
  (cd "$dir" && ar x "$OLDPWD/target/release/libnowatch_ota_watch_footprint.a" "$member")
  echo "code, bytes (text symbols of the LTO object, by crate; memcpy, memset, memcmp come from libc or compiler_builtins):"
  nm --size-sort -C -t d "$dir/$member" | awk '
    $2 ~ /^[tT]$/ {
      name = $0; sub(/^[0-9]+ [tT] /, "", name); sub(/^</, "", name); sub(/^&/, "", name);
      crate = name; sub(/::.*/, "", crate); sub(/ .*/, "", crate);
      if (crate !~ /^(nowatch_ota_watch|nw_update|ed25519_dalek|curve25519_dalek|sha2|core|subtle)$/) crate = "other";
      size[crate] += $1; total += $1
    }
    END { for (c in size) printf "  %-40s %6d\n", c, size[c]; printf "  %-40s %6d\n", "total text", total }' | sort -k2 -n
  echo "sections (size -A), bytes:"
  size -A "$dir/$member" | awk '$1 ~ /^\.(text|rodata|data|bss)/ { split($1, p, "."); s[p[2]] += $2 } END { for (k in s) printf "  %-40s %6d\n", k, s[k] }'
  rm -rf "$dir"
}

measure "x86_64, backends as built" ""
measure "x86_64, Cortex-M's portable backends" \
  '--cfg sha2_backend="soft" --cfg sha2_backend_soft="compact" --cfg curve25519_dalek_backend="serial" --cfg curve25519_dalek_bits="32"'
