//! The scan is linear on hostile input: for each shape, a document 16 times longer takes less than 40 times
//! as long (a quadratic scan takes about 256 times). A ratio of the same input scaled up, not a wall-clock
//! budget: the speed itself is measured by `make bench`.

use secure_headers::script_hashes;
use std::time::{Duration, Instant};

const UTF8: Option<&[u8]> = Some(b"text/html; charset=utf-8");

/// (name, prefix, repeated unit, suffix): the unit is repeated to the document's size.
const SHAPES: &[(&str, &str, &str, &str)] = &[
    ("comments", "", "<!-- c -->", ""),
    ("empty comments", "", "<!---->", ""),
    ("unclosed comment", "<!--", "- -!", ""),
    ("tags", "", "<div><span>x</span></div>", ""),
    ("attributes", "<div ", "a=1 b='2' c=\"3\" ", ">"),
    ("unclosed quoted attribute", "<div a=\"", "<p>x</p> ", ""),
    ("end tags", "", "</x></ y></3></>", ""),
    ("less-than signs", "", "< <a <!<? ", ""),
    ("svg subtrees", "", "<svg><g><path/></g></svg>", ""),
    ("deep svg", "", "<svg><g>", ""),
    (
        "integration points",
        "",
        "<svg><foreignObject><p>x</p><b>y</b></foreignObject></svg>",
        "",
    ),
    ("cdata in svg", "<svg>", "<![CDATA[ ] ]] ]]>", ""),
    ("unclosed cdata", "<svg><![CDATA[", "]] ] >", ""),
    ("templates", "", "<template><p>x</p></template>", ""),
    ("open templates", "", "<template>", ""),
    ("scripts", "", "<script>same()</script>", ""),
    (
        "escaped script",
        "<script><!--",
        "<script>-- --></script",
        "</script>",
    ),
    ("unclosed script", "<script>", "</scrip <!-- -", ""),
    ("rcdata", "<textarea>", "</textare </ <", "</textarea>"),
    ("meta", "", "<meta charset=utf-8>", ""),
];

fn once(doc: &[u8]) -> Duration {
    let start = Instant::now();
    let _ = std::hint::black_box(script_hashes(doc, UTF8, 8));
    start.elapsed()
}

/// The fastest of five runs of each, taken in turn, so that a busy moment of the machine hits both sizes alike
/// and the minimum is the scan's own time.
fn times(small: &[u8], large: &[u8]) -> (Duration, Duration) {
    (0..5).fold((Duration::MAX, Duration::MAX), |(s, l), _| {
        (s.min(once(small)), l.min(once(large)))
    })
}

fn document(prefix: &str, unit: &str, suffix: &str, bytes: usize) -> Vec<u8> {
    let mut doc = prefix.as_bytes().to_vec();
    while doc.len() < bytes {
        doc.extend_from_slice(unit.as_bytes());
    }
    doc.extend_from_slice(suffix.as_bytes());
    doc
}

#[test]
fn sixteen_times_the_bytes_take_less_than_forty_times_the_time() {
    for (name, prefix, unit, suffix) in SHAPES {
        let small = document(prefix, unit, suffix, 64 << 10);
        let large = document(prefix, unit, suffix, 1 << 20);
        let (t_small, t_large) = times(&small, &large);
        let ratio = t_large.as_secs_f64() / t_small.as_secs_f64().max(1e-9);
        assert!(
            ratio < 40.0,
            "{name}: 64 KiB in {t_small:?}, 1 MiB in {t_large:?} (x{ratio:.1})"
        );
    }
}
