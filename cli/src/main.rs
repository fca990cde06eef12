//! `secure-headers`: native tools around the policy. Subcommands share the engine with the Wasm builds, so
//! what they print is what the plugins do.

mod exchange;
mod explain;
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
        #[arg(long, default_value = "secure-headers")]
        middleware: String,
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
            middleware,
        } => {
            let policy = policy_file::load_or_message(&policy, &middleware)?;
            let exchange = explain::Exchange {
                url: &url,
                host,
                style,
                method: &method,
                status,
                content_type: content_type.as_deref(),
                upstream_headers: &upstream_headers,
            };
            explain::run(&policy, &exchange).map(|out| (out, true))
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
