//! Byte-level readings of HTTP request and response fields that both the response decision and the report
//! collector need: no allocation, no validation, never a panic. The per-request ones are `#[inline]`: each host
//! adapter's crate then compiles its own copy at its speed-leaning opt-level (this crate is built for size).

/// Slice equality a word at a time: the Wasm builds' memcmp compares a byte at a time. Inlined into its caller,
/// whose crate may be optimised for speed (this one is for size, where even the slice helpers below stay calls).
#[inline(always)]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && same_length_words(a, b, |word| word, |x, y| x == y)
}

/// `eq_ignore_ascii_case` a word at a time (core's compares a byte at a time, about 40 Wasm instructions a
/// byte): for the header values and names the per-request path compares. One copy per crate, not per call.
#[inline]
pub fn same_ignoring_ascii_case(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && same_length_words(a, b, ascii_lowercase_word, u8::eq_ignore_ascii_case)
}

/// Equal-length slices compared as words, each word through `fold` first; `same_byte` for slices under four
/// bytes.
#[inline(always)]
fn same_length_words(
    a: &[u8],
    b: &[u8],
    fold: impl Fn(u64) -> u64,
    same_byte: impl Fn(&u8, &u8) -> bool,
) -> bool {
    if let (Some(a_last), Some(b_last)) = (a.last_chunk::<8>(), b.last_chunk::<8>()) {
        // The last eight bytes (overlapping the last whole word unless the length is a multiple of eight),
        // then every whole word.
        if fold(u64::from_le_bytes(*a_last)) != fold(u64::from_le_bytes(*b_last)) {
            return false;
        }
        // A plain loop: in the engine's size-optimised build, an iterator chain's closure stayed a call per
        // word (about 40 instructions a word, 50,000 for a 10 KiB document compared with the last one).
        let mut at = 0;
        while let (Some(x), Some(y)) = (a.get(at..at + 8), b.get(at..at + 8)) {
            if fold(word(x)) != fold(word(y)) {
                return false;
            }
            at += 8;
        }
        return true;
    }
    if let (Some(a_first), Some(b_first), Some(a_last), Some(b_last)) = (
        a.first_chunk::<4>(),
        b.first_chunk::<4>(),
        a.last_chunk::<4>(),
        b.last_chunk::<4>(),
    ) {
        // Four to seven bytes: the first four and the last four.
        let half = |w: &[u8; 4]| fold(u64::from(u32::from_le_bytes(*w)));
        return half(a_first) == half(b_first) && half(a_last) == half(b_last);
    }
    a.iter().zip(b).all(|(x, y)| same_byte(x, y))
}

/// Each byte of `word` in 'A'..='Z' lowered, every other byte (non-ASCII among them) unchanged, with no carry
/// between bytes: the sums below stay under 0x100 per byte once the high bits are cleared.
#[inline(always)]
fn ascii_lowercase_word(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low = word & !HIGH;
    let at_least_a = low + ONES * u64::from(0x80 - b'A');
    let past_z = low + ONES * u64::from(0x80 - b'Z' - 1);
    let upper = at_least_a & !past_z & !word & HIGH;
    word | (upper >> 2)
}

/// An eight-byte chunk (the loop above takes no other) as one load. Converting to an array of known length,
/// not `copy_from_slice`, whose length the size-optimised build does not know: it became a `memory.copy` per
/// word, each a call out of V8's compiled code (about 50 instructions of Envoy's per word, 1,280 per 10 KiB
/// document). No `Option` to map: in the engine's size-optimised build that was a call per word.
#[inline(always)]
fn word(chunk: &[u8]) -> u64 {
    <[u8; 8]>::try_from(chunk).map_or(0, u64::from_le_bytes)
}

/// A `:status` value as a number: ASCII digits only (no sign, no space), at most 65535.
#[inline]
pub fn status_code(value: &[u8]) -> Option<u16> {
    if value.is_empty() || value.len() > 5 {
        return None;
    }
    let mut code: u32 = 0;
    for byte in value {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        code = code * 10 + u32::from(digit);
    }
    u16::try_from(code).ok()
}

/// `Content-Type` without parameters and surrounding white space: `text/html; charset=utf-8` -> `text/html`.
#[inline]
pub fn media_type(content_type: &[u8]) -> &[u8] {
    // A plain loop: the size-optimised build keeps `position`'s closure machinery, about 25 instructions a byte.
    let mut end = 0;
    for byte in content_type {
        if *byte == b';' {
            break;
        }
        end += 1;
    }
    content_type
        .get(..end)
        .map(<[u8]>::trim_ascii)
        .unwrap_or_default()
}

/// The extension of the last segment of a path without its query (`strip_query`), without the dot:
/// `/favicon.ico` -> `ico`.
#[inline]
pub fn path_extension(path: &[u8]) -> Option<&[u8]> {
    let segment_start = path.iter().rposition(|b| *b == b'/').map_or(0, |i| i + 1);
    let segment = path.get(segment_start..)?;
    let dot = segment.iter().rposition(|b| *b == b'.')?;
    segment.get(dot + 1..).filter(|ext| !ext.is_empty())
}

/// The path without its query or fragment: `/a?b#c` -> `/a`.
#[inline]
pub fn strip_query(path: &[u8]) -> &[u8] {
    let end = path
        .iter()
        .position(|b| *b == b'?' || *b == b'#')
        .unwrap_or(path.len());
    path.get(..end).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic pseudo-random source for the differential tests below.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    #[test]
    fn helpers_cut_parameters_and_queries() {
        assert_eq!(media_type(b" text/html ; charset=utf-8"), b"text/html");
        assert_eq!(
            path_extension(strip_query(b"/favicon.ICO?x=a.b")),
            Some(&b"ICO"[..])
        );
        assert_eq!(path_extension(b"/a.b/c"), None);
        assert_eq!(path_extension(b"/a."), None);
        assert_eq!(strip_query(b"/a?b#c"), b"/a");
    }

    #[test]
    fn a_status_code_is_digits_only() {
        assert_eq!(status_code(b"200"), Some(200));
        assert_eq!(status_code(b"65535"), Some(65535));
        for bad in [
            &b""[..],
            b"65536",
            b"2OO",
            b"+200",
            b" 200",
            b"200 ",
            b"123456",
            b"-1",
        ] {
            assert_eq!(status_code(bad), None, "{bad:?}");
        }
        for code in 0..=u16::MAX {
            assert_eq!(status_code(code.to_string().as_bytes()), Some(code));
        }
    }

    #[test]
    fn word_equality_is_slice_equality() {
        let base: Vec<u8> = (0..=40).collect();
        for len in 0..base.len() {
            let a = &base[..len];
            assert!(same_bytes(a, a));
            for flip in 0..len {
                let mut b = a.to_vec();
                b[flip] ^= 1;
                assert!(!same_bytes(a, &b), "len {len} flip {flip}");
            }
            assert!(!same_bytes(a, &base[..len + 1]));
        }
    }

    #[test]
    fn word_case_folding_agrees_with_core_on_every_byte_pair_and_pseudo_random_slices() {
        for x in 0..=255u8 {
            for y in 0..=255u8 {
                for len in 1..=9 {
                    let (mut a, b) = (vec![b'q'; len], vec![b'Q'; len]);
                    let mut b = b;
                    a[len - 1] = x;
                    b[len - 1] = y;
                    assert_eq!(
                        same_ignoring_ascii_case(&a, &b),
                        a.eq_ignore_ascii_case(&b),
                        "{x:#x} {y:#x} at {len}"
                    );
                }
            }
        }
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..50_000 {
            let len = (next() % 20) as usize;
            let a: Vec<u8> = (0..len)
                .map(|_| b"aAzZ@[`{-\xc1\xe1"[(next() % 10) as usize])
                .collect();
            // The same bytes with some cases flipped, and now and then one byte changed.
            let mut b: Vec<u8> = a
                .iter()
                .map(|c| if next() % 2 == 0 { c ^ 0x20 } else { *c })
                .collect();
            if !b.is_empty() && next() % 3 == 0 {
                let at = (next() % b.len() as u64) as usize;
                b[at] = (next() % 256) as u8;
            }
            assert_eq!(
                same_ignoring_ascii_case(&a, &b),
                a.eq_ignore_ascii_case(&b),
                "{a:?} {b:?}"
            );
        }
    }

    #[test]
    fn word_equality_agrees_with_slice_equality_on_pseudo_random_pairs() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            // A tiny alphabet, so that equal and near-equal pairs are common.
            let a: Vec<u8> = (0..len).map(|_| (next() % 3) as u8).collect();
            let b: Vec<u8> = (0..len + (next() % 2) as usize)
                .map(|_| (next() % 3) as u8)
                .collect();
            assert_eq!(same_bytes(&a, &b), a == b, "{a:?} {b:?}");
        }
    }
}
