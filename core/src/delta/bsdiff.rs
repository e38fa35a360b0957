//! The bsdiff chunks of a sequential patch: a faithful port of detools' `bsdiff.c`
//! (`create_patch_loop`, `write_diff_extra_and_adjustment`, `search`), so that for the same two
//! images the uncompressed patch is the very byte string detools writes.
//!
//! The arithmetic stays in `i64` where the C code used `int32_t`; every value the C code can hold
//! is the same here, and the inputs are bounded by the suffix array's `i32` anyway.

use super::common_prefix;
use super::size::pack_size;

/// Appends the chunks that turn `from` into `to`: for each, the diff data (`to` minus `from`,
/// bytewise and wrapping), the extra data (bytes of `to` as they are) and the adjustment of the
/// position in `from`, each led by its size.
///
/// Panics if `from` is 2 GiB or larger (detools' suffix array is `int32_t`, so is this one).
pub(crate) fn write_chunks(from: &[u8], to: &[u8], out: &mut Vec<u8>) {
    let suffix_array = suffix_array(from);
    Diff { sa: &suffix_array, from, to, out }.create_patch_loop();
}

/// The suffix array detools builds (`suffix_array.c`): entry 0 is `from.len()` (the empty suffix,
/// which sorts first), then the suffixes of `from` in order.
fn suffix_array(from: &[u8]) -> Vec<i32> {
    let len = i32::try_from(from.len()).unwrap_or_else(|_| panic!("a delta's old image must be under 2 GiB"));
    let mut sa = vec![0i32; from.len() + 1];
    sa[0] = len;
    divsufsort::sort_in_place(from, &mut sa[1..]);
    sa
}

struct Diff<'a> {
    sa: &'a [i32],
    from: &'a [u8],
    to: &'a [u8],
    out: &'a mut Vec<u8>,
}

/// Where the previous chunk left the scan of `to` and the position in `from`.
struct Last {
    scan: i64,
    pos: i64,
    offset: i64,
}

/// Positions in the images are non-negative wherever they index (the C code would read out of
/// bounds otherwise); the conversion keeps a mistake in the port a panic, not a wrong patch.
fn at(i: i64) -> usize {
    usize::try_from(i).unwrap_or_else(|_| panic!("negative image position {i}"))
}

fn len_i64(data: &[u8]) -> i64 {
    int(data.len())
}

fn int(n: usize) -> i64 {
    // Lengths of slices never exceed isize::MAX, so this cannot wrap.
    n as i64
}

impl Diff<'_> {
    fn create_patch_loop(&mut self) {
        let to_size = len_i64(self.to);
        let mut scan: i64 = 0;
        let mut len: i64 = 0;
        let mut pos: i64 = 0;
        let mut last = Last { scan: 0, pos: 0, offset: 0 };

        while scan < to_size {
            let mut from_score: i64 = 0;
            scan += len;
            let mut scsc = scan;
            while scan < to_size {
                (len, pos) = self.search(at(scan));
                while scsc < scan + len {
                    if self.same_byte(scsc + last.offset, scsc) {
                        from_score += 1;
                    }
                    scsc += 1;
                }
                if (len == from_score && len != 0) || len > from_score + 8 {
                    break;
                }
                if self.same_byte(scan + last.offset, scan) {
                    from_score -= 1;
                }
                scan += 1;
            }
            if len != from_score || scan == to_size {
                self.write_diff_extra_and_adjustment(scan, pos, &mut last);
            }
        }
    }

    /// `(from_p[from_pos] == to_p[to_pos])` guarded by `from_pos < from_size`, as in the C loop.
    /// The C code leaves `from_pos >= 0` implicit (`scsc` and `scan` never fall behind the last
    /// match's scan, so adding its offset gives at least its position); the check only makes that
    /// explicit.
    fn same_byte(&self, from_pos: i64, to_pos: i64) -> bool {
        from_pos < len_i64(self.from) && from_pos >= 0 && self.from[at(from_pos)] == self.to[at(to_pos)]
    }

    /// The longest match in `from` for `to[scan..]`, by binary search over the suffix array:
    /// `(length, position in from)`.
    fn search(&self, scan: usize) -> (i64, i64) {
        let to = &self.to[scan..];
        let (mut begin, mut end) = (0, self.from.len());
        loop {
            if end - begin < 2 {
                let x = self.sa[begin];
                let y = self.sa[end];
                let x_len = common_prefix(&self.from[x as usize..], to);
                let y_len = common_prefix(&self.from[y as usize..], to);
                return if x_len > y_len { (int(x_len), i64::from(x)) } else { (int(y_len), i64::from(y)) };
            }
            let middle = begin + (end - begin) / 2;
            let suffix = &self.from[self.sa[middle] as usize..];
            let n = suffix.len().min(to.len());
            // memcmp(...) < 0 in the C code: equal-length slices compare as memcmp does.
            if suffix[..n] < to[..n] {
                begin = middle;
            } else {
                end = middle;
            }
        }
    }

    fn write_diff_extra_and_adjustment(&mut self, scan: i64, pos: i64, last: &mut Last) {
        let (from, to) = (self.from, self.to);
        let from_size = len_i64(from);
        let to_size = len_i64(to);
        let byte_eq = |f: i64, t: i64| from[at(f)] == to[at(t)];

        // How far forwards from the last match the diff extends.
        let mut s: i64 = 0;
        let mut sf: i64 = 0;
        let mut diff_size: i64 = 0;
        let mut i: i64 = 0;
        while last.scan + i < scan && last.pos + i < from_size {
            if byte_eq(last.pos + i, last.scan + i) {
                s += 1;
            }
            i += 1;
            if s * 2 - i > sf * 2 - diff_size {
                sf = s;
                diff_size = i;
            }
        }

        // How far backwards from the new match.
        let mut lenb: i64 = 0;
        if scan < to_size {
            let mut s: i64 = 0;
            let mut sb: i64 = 0;
            let mut i: i64 = 1;
            while scan >= last.scan + i && pos >= i {
                if byte_eq(pos - i, scan - i) {
                    s += 1;
                }
                if s * 2 - i > sb * 2 - lenb {
                    sb = s;
                    lenb = i;
                }
                i += 1;
            }
        }

        // Where the two overlap, split them where the matches score best.
        let overlap = (last.scan + diff_size) - (scan - lenb);
        if overlap > 0 {
            let mut s: i64 = 0;
            let mut ss: i64 = 0;
            let mut lens: i64 = 0;
            for i in 0..overlap {
                if to[at(last.scan + diff_size - overlap + i)] == from[at(last.pos + diff_size - overlap + i)]
                {
                    s += 1;
                }
                if to[at(scan - lenb + i)] == from[at(pos - lenb + i)] {
                    s -= 1;
                }
                if s > ss {
                    ss = s;
                    lens = i + 1;
                }
            }
            diff_size += lens - overlap;
            lenb -= lens;
        }

        // Diff data.
        pack_size(diff_size, self.out);
        let (to_start, from_start) = (at(last.scan), at(last.pos));
        let diff_len = at(diff_size);
        self.out.extend(
            to[to_start..to_start + diff_len]
                .iter()
                .zip(&from[from_start..from_start + diff_len])
                .map(|(t, f)| t.wrapping_sub(*f)),
        );

        // Extra data.
        let extra_pos = last.scan + diff_size;
        let extra_size = scan - lenb - extra_pos;
        pack_size(extra_size, self.out);
        self.out.extend_from_slice(&to[at(extra_pos)..at(extra_pos + extra_size)]);

        // Adjustment.
        pack_size((pos - lenb) - (last.pos + diff_size), self.out);

        last.scan = scan - lenb;
        last.pos = pos - lenb;
        last.offset = pos - scan;
    }
}
