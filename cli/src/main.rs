//! `secure-headers`: native tools around the policy. Subcommands share the engine with the Wasm builds, so
//! what they print is what the plugins do.

mod check;
mod document_scripts;
mod exchange;
mod explain;
mod fetch;
mod findings;
mod policy_file;
mod traefik_middleware;

use clap::{Parser, Subcommand};
use exchange::Style;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "secure-headers", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the line each host logs for each bad policy (field path and reason); exit 1 if any is bad.
    Validate {
        /// JSON files, - for stdin, or Traefik dynamic configurations (.yml/.yaml) holding the plugin.
        #[arg(required = true)]
        policies: Vec<PathBuf>,
        /// In a dynamic configuration file: the name of the plugin's middleware.
        #[arg(long, default_value = "secure-headers")]
        middleware: String,
    },
    /// Which rule a request matches and every header written, removed or kept, and why.
    Explain {
        /// The policy (as for `validate`).
        policy: PathBuf,
        /// The URL requested, as the browser sees it (scheme, host, path).
        url: String,
        #[arg(long, value_enum, default_value = "envoy")]
        host: explain::Host,
        /// How the request is made.
        #[arg(long = "as", value_enum, default_value = "document")]
        style: Style,
        #[arg(long, default_value = "GET")]
        method: String,
        /// The upstream's status.
        #[arg(long, default_value_t = 200)]
        status: u16,
        /// The upstream's Content-Type (default: what `--as` usually gets).
        #[arg(long)]
        content_type: Option<String>,
        /// A header the upstream sends, `Name: value` (repeat for each).
        #[arg(long = "upstream-header")]
        upstream_headers: Vec<String>,
        /// The HTML the upstream answers with: a rule with inline_script_hashes then shows this document's CSP
        /// and which of its scripts that CSP blocks.
        #[arg(long)]
        document: Option<PathBuf>,
        #[arg(long, default_value = "secure-headers")]
        middleware: String,
    },
    /// Status and headers of each URL, fetched as a browser navigation and as a scanner, into a JSON file.
    Baseline {
        #[arg(required = true)]
        urls: Vec<String>,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        fetching: Fetching,
    },
    /// The same fetches, then a report per URL and header: present, missing, duplicated, weak, the ZAP
    /// baseline's header findings, and what differs from the policy (--policy) or the baseline (--against).
    Check {
        #[arg(required = true)]
        urls: Vec<String>,
        /// What the policy says each response should get is compared with what arrived.
        #[arg(long)]
        policy: Option<PathBuf>,
        #[arg(long, default_value = "secure-headers")]
        middleware: String,
        /// A file from `baseline`: report what changed since.
        #[arg(long)]
        against: Option<PathBuf>,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
        /// Exit 1 when a finding of this severity or above remains.
        #[arg(long, value_enum, default_value = "high")]
        fail_on: findings::Severity,
        #[command(flatten)]
        fetching: Fetching,
    },
    /// Print the Traefik `headers` middleware that gives streamed responses what every response gets
    /// (removals and static headers), as dynamic-configuration YAML to put after the plugin.
    TraefikMiddleware {
        /// The policy: a JSON file (the text Envoy's configuration or `policy: |` carries), - for stdin, or a
        /// Traefik dynamic configuration (.yml/.yaml) holding the plugin's middleware (YAML keys or `policy: |`).
        policy: PathBuf,
        /// In a dynamic configuration file: the name of the plugin's middleware.
        #[arg(long, default_value = "secure-headers")]
        middleware: String,
        /// Name of the generated middleware.
        #[arg(long, default_value = "secure-headers-streamed")]
        name: String,
        /// A host the routers carrying the middleware serve (repeat for each); without it, any host.
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
}

#[derive(clap::Args)]
struct Fetching {
    /// Also fetch up to N same-origin scripts, styles, images and API URLs the first page references.
    #[arg(long, default_value_t = 0)]
    crawl: usize,
    /// Accept any certificate (test setups only).
    #[arg(long)]
    insecure: bool,
    /// Trust the certificates of this PEM file instead of the built-in roots.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Seconds for each fetch, connection to last byte.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

impl Fetching {
    fn fetch(&self, urls: &[String]) -> Result<(Vec<check::Entry>, Vec<String>), String> {
        let plan = check::FetchPlan {
            urls,
            crawl: self.crawl,
            client: fetch::Client::new(self.insecure, self.ca.as_deref(), self.timeout)?,
        };
        Ok(check::fetch_all(&plan))
    }
}

/// What a subcommand prints on stdout, and whether it succeeded.
type Outcome = Result<(String, bool), String>;

fn run(command: Command) -> Outcome {
    match command {
        Command::Validate {
            policies,
            middleware,
        } => Ok(policy_file::validate(&policies, &middleware)),
        Command::Explain {
            policy,
            url,
            host,
            style,
            method,
            status,
            content_type,
            upstream_headers,
            document,
            middleware,
        } => {
            let policy = policy_file::load_or_message(&policy, &middleware)?;
            let document = document
                .map(|path| std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display())))
                .transpose()?;
            let exchange = explain::Exchange {
                url: &url,
                host,
                style,
                method: &method,
                status,
                content_type: content_type.as_deref(),
                upstream_headers: &upstream_headers,
                document: document.as_deref(),
            };
            explain::run(&policy, &exchange).map(|out| (out, true))
        }
        Command::Baseline {
            urls,
            out,
            fetching,
        } => {
            let (entries, errors) = fetching.fetch(&urls)?;
            if let Some(first) = errors.first() {
                return Err(first.clone());
            }
            check::write_baseline(entries, &out).map(|out| (out, true))
        }
        Command::Check {
            urls,
            policy,
            middleware,
            against,
            json,
            fail_on,
            fetching,
        } => {
            let policy = policy
                .map(|p| policy_file::load_or_message(&p, &middleware))
                .transpose()?;
            let baseline = against.map(|p| check::read_baseline(&p)).transpose()?;
            let (entries, errors) = fetching.fetch(&urls)?;
            let reports = entries
                .iter()
                .map(|e| check::report(e, policy.as_ref(), baseline.as_ref()))
                .collect::<Result<Vec<_>, _>>()?;
            let failing = !errors.is_empty()
                || reports
                    .iter()
                    .flat_map(|r| &r.findings)
                    .any(|f| f.severity >= fail_on);
            let out = if json {
                serde_json::json!({"reports": reports, "errors": errors, "summary": check::summary(&reports, &errors).trim_end()})
                    .to_string()
                    + "\n"
            } else {
                check::render_text(&reports, &errors)
            };
            for error in &errors {
                eprintln!("secure-headers: {error}");
            }
            Ok((out, !failing))
        }
        Command::TraefikMiddleware {
            policy,
            middleware,
            name,
            hosts,
        } => traefik_middleware::run(&policy, &middleware, &name, &hosts).map(|out| (out, true)),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok((output, success)) => {
            print!("{output}");
            if success {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(message) => {
            eprintln!("secure-headers: {message}");
            ExitCode::FAILURE
        }
    }
}
