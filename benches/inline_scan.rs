//! `make bench`: native throughput of the inline-script scan (`script_hashes`), on the 10 KiB Immich-shaped page
//! of bench/run.py, on 1 MiB of ordinary markup, and on 1 MiB hostile shapes. Prints one JSON object per
//! shape (bench/run.py reads them into BENCHMARKS.md).

use secure_headers::script_hashes;
use std::time::{Duration, Instant};

const UTF8: Option<&[u8]> = Some(b"text/html; charset=utf-8");

/// The same page as bench/run.py's PAGE_10K.
fn immich_page() -> String {
    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Immich</title>\
         <script>document.documentElement.classList.add(localStorage.getItem('theme') || 'dark');</script>",
    );
    page += &"<link rel=\"modulepreload\" href=\"/_app/immutable/chunks/c.js\">".repeat(162);
    page += "</head><body><div style=\"display: contents\"><script>{ __sveltekit = {base: ''}; \
             Promise.all([import('/_app/immutable/entry/start.js')]).then(([kit]) => kit.start()); }</script>\
             </div></body></html>";
    page
}

fn repeated(prefix: &str, unit: &str, bytes: usize) -> String {
    let mut doc = String::from(prefix);
    while doc.len() < bytes {
        doc += unit;
    }
    doc
}

/// Median time of one scan, over enough runs for about half a second.
fn time(doc: &[u8]) -> Duration {
    let once = {
        let start = Instant::now();
        let _ = std::hint::black_box(script_hashes(doc, UTF8, 8));
        start.elapsed()
    };
    let runs = (Duration::from_millis(500).as_nanos() / once.as_nanos().max(1)).clamp(5, 20_000);
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let _ = std::hint::black_box(script_hashes(doc, UTF8, 8));
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() {
    const MIB: usize = 1 << 20;
    let page = immich_page();
    let ordinary = repeated(
        "",
        "<div class=\"row\"><a href=\"/photos/1\"><img src=\"/t/1.webp\" alt=\"\"></a><!-- item --><span>Photo</span></div>\n",
        MIB,
    );
    let shapes: Vec<(&str, String)> = vec![
        ("immich page (10 KiB)", page),
        ("ordinary markup", ordinary),
        ("comments", repeated("", "<!-- c -->", MIB)),
        ("empty comments", repeated("", "<!---->", MIB)),
        ("unclosed comment", repeated("<!--", "- -!", MIB)),
        ("tags", repeated("", "<div><span>x</span></div>", MIB)),
        (
            "attributes",
            repeated("<div ", "a=1 b='2' c=\"3\" ", MIB) + ">",
        ),
        (
            "unclosed attribute",
            repeated("<div a=\"", "<p>x</p> ", MIB),
        ),
        ("end tags", repeated("", "</x></ y></3></>", MIB)),
        (
            "svg subtrees",
            repeated("", "<svg><g><path d=\"M0 0\"/></g></svg>", MIB),
        ),
        ("cdata in svg", repeated("<svg>", "<![CDATA[ ] ]] ]]>", MIB)),
        (
            "templates",
            repeated("", "<template><p>x</p></template>", MIB),
        ),
        ("scripts", repeated("", "<script>same()</script>", MIB)),
        (
            "escaped script",
            repeated("<script><!--", "<script>-- --></script", MIB),
        ),
        (
            "unclosed script",
            repeated("<script>", "</scrip <!-- -", MIB),
        ),
        ("rcdata", repeated("<textarea>", "</textare </ <", MIB)),
    ];
    for (shape, doc) in &shapes {
        let t = time(doc.as_bytes());
        let mb_per_s = doc.len() as f64 / 1e6 / t.as_secs_f64();
        println!(
            "{{\"shape\": \"{shape}\", \"bytes\": {}, \"us\": {:.1}, \"mb_per_s\": {mb_per_s:.0}}}",
            doc.len(),
            t.as_secs_f64() * 1e6
        );
    }
}
