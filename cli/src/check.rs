//! `baseline` and `check`: the same fetches (as a browser navigation and as a scanner), then a file, or a report
//! per URL and header.

use crate::exchange::{decide, Request, Response, Style};
use crate::fetch::{referenced_urls, Client};
use crate::findings::{scan, Finding, Severity, SECURITY_HEADERS};
use secure_headers::Policy;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// Fetches beyond which progress goes to stderr.
const QUIET_FETCHES: usize = 4;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub url: String,
    pub style: Style,
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
pub struct Baseline {
    pub entries: Vec<Entry>,
}

pub struct FetchPlan<'a> {
    pub urls: &'a [String],
    pub crawl: usize,
    pub client: Client,
}

/// Every fetch: each URL as a navigation and as a scanner, then (with `--crawl`) what the first page
/// references, in the style the browser fetches it. Failures are one line each.
pub fn fetch_all(plan: &FetchPlan) -> (Vec<Entry>, Vec<String>) {
    let mut jobs: Vec<(String, Style)> = plan
        .urls
        .iter()
        .flat_map(|u| [(u.clone(), Style::Document), (u.clone(), Style::Scanner)])
        .collect();
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let mut i = 0;
    while let Some((url, style)) = jobs.get(i).cloned() {
        i += 1;
        if jobs.len() > QUIET_FETCHES {
            eprintln!("[{i}/{}] {url} ({style:?})", jobs.len());
        }
        let crawling = i == 1 && plan.crawl > 0;
        match plan.client.fetch(&url, style, crawling) {
            Ok(fetched) => {
                if let (true, Some(body)) = (crawling, &fetched.body) {
                    jobs.extend(referenced_urls(&fetched.final_url, body, plan.crawl));
                }
                entries.push(Entry {
                    url,
                    style,
                    status: fetched.response.status,
                    headers: fetched.response.headers,
                });
            }
            // A bad URL or an unreachable host fails both styles the same way: say it once.
            Err(message) if !errors.contains(&message) => errors.push(message),
            Err(_) => {}
        }
    }
    (entries, errors)
}

pub fn write_baseline(entries: Vec<Entry>, out: &Path) -> Result<String, String> {
    let count = entries.len();
    let json = serde_json::to_string_pretty(&Baseline { entries }).map_err(|e| e.to_string())?;
    std::fs::write(out, json + "\n").map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(format!(
        "baseline: {count} response(s) written to {}\n",
        out.display()
    ))
}

pub fn read_baseline(path: &Path) -> Result<Baseline, String> {
    let text = std::fs::read(path).map_err(|e| format!("--against {}: {e}", path.display()))?;
    serde_json::from_slice(&text)
        .map_err(|e| format!("--against {}: not a baseline ({e})", path.display()))
}

#[derive(Serialize)]
pub struct Report {
    pub url: String,
    pub style: Style,
    pub status: u16,
    pub present: Vec<(String, String)>,
    pub missing: Vec<String>,
    pub findings: Vec<Finding>,
}

pub fn report(
    entry: &Entry,
    policy: Option<&Policy>,
    baseline: Option<&Baseline>,
) -> Result<Report, String> {
    let response = Response {
        status: entry.status,
        headers: entry.headers.clone(),
    };
    let https = entry.url.starts_with("https://");
    let mut findings = scan(&response, https);
    if let Some(policy) = policy {
        findings.extend(policy_differences(policy, entry, &response)?);
    }
    if let Some(baseline) = baseline {
        findings.extend(changes(baseline, entry, &response));
    }
    let present = SECURITY_HEADERS
        .iter()
        .flat_map(|n| {
            response
                .values(n)
                .into_iter()
                .map(|v| (n.to_string(), v.to_string()))
        })
        .collect();
    let missing = SECURITY_HEADERS
        .iter()
        .filter(|n| response.values(n).is_empty())
        .map(|n| n.to_string())
        .collect();
    Ok(Report {
        url: entry.url.clone(),
        style: entry.style,
        status: entry.status,
        present,
        missing,
        findings,
    })
}

/// The engine's decision for this URL and request style, applied to what arrived: anything it would still change
/// is something the policy says and the response lacks (no middleware on the route, a CDN stripping a header).
fn policy_differences(
    policy: &Policy,
    entry: &Entry,
    arrived: &Response,
) -> Result<Vec<Finding>, String> {
    let request = Request::new(&entry.url, entry.style, "GET")?;
    let decision = decide(policy, &request, arrived, None);
    let mut names: Vec<&str> = arrived
        .headers
        .iter()
        .chain(&decision.after.headers)
        .map(|(n, _)| n.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    Ok(names
        .into_iter()
        .filter_map(|name| {
            let mut got = arrived.values(name);
            let mut want = decision.after.values(name);
            got.dedup();
            want.dedup();
            (got != want).then(|| {
                Finding::new(
                    "policy",
                    Severity::High,
                    format!("{name}: the policy gives {want:?}, arrived {got:?}"),
                )
            })
        })
        .collect())
}

fn changes(baseline: &Baseline, entry: &Entry, now: &Response) -> Vec<Finding> {
    let Some(before) = baseline
        .entries
        .iter()
        .find(|b| b.url == entry.url && b.style == entry.style)
    else {
        return vec![Finding::new(
            "changed",
            Severity::Info,
            "not in the baseline",
        )];
    };
    let before = Response {
        status: before.status,
        headers: before.headers.clone(),
    };
    let mut out = Vec::new();
    if before.status != now.status {
        out.push(Finding::new(
            "changed",
            Severity::Info,
            format!("status {} -> {}", before.status, now.status),
        ));
    }
    let mut names: Vec<&str> = before
        .headers
        .iter()
        .chain(&now.headers)
        .map(|(n, _)| n.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names.into_iter().filter(|n| !VOLATILE.contains(n)) {
        let (was, is) = (before.values(name), now.values(name));
        if was != is {
            out.push(Finding::new(
                "changed",
                Severity::Info,
                format!("{name}: {was:?} -> {is:?}"),
            ));
        }
    }
    out
}

/// Headers that differ on every fetch, left out of `--against`.
const VOLATILE: &[&str] = &[
    "date",
    "age",
    "etag",
    "last-modified",
    "content-length",
    "x-request-id",
    "set-cookie",
    "expires",
];

pub fn render_text(reports: &[Report], errors: &[String]) -> String {
    let mut out = String::new();
    for r in reports {
        let _ = writeln!(out, "{} ({:?}) {}", r.url, r.style, r.status);
        for (name, value) in &r.present {
            let _ = writeln!(out, "  present  {name}: {value}");
        }
        for name in &r.missing {
            let _ = writeln!(out, "  missing  {name}");
        }
        for f in &r.findings {
            let _ = writeln!(out, "  [{:?}] {} {}", f.severity, f.id, f.detail);
        }
    }
    out.push_str(&summary(reports, errors));
    out
}

pub fn summary(reports: &[Report], errors: &[String]) -> String {
    let count = |s: Severity| {
        reports
            .iter()
            .flat_map(|r| &r.findings)
            .filter(|f| f.severity == s)
            .count()
    };
    format!(
        "summary: {} response(s), {} error(s); findings: {} high, {} medium, {} low, {} info\n",
        reports.len(),
        errors.len(),
        count(Severity::High),
        count(Severity::Medium),
        count(Severity::Low),
        count(Severity::Info)
    )
}
