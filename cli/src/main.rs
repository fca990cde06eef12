//! `secure-headers`: native tools around the policy. Subcommands share the engine with the Wasm builds, so
//! what they print is what the plugins do.

mod traefik_middleware;

use clap::{Parser, Subcommand};
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

fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::TraefikMiddleware {
            policy,
            middleware,
            name,
            hosts,
        } => traefik_middleware::run(&policy, &middleware, &name, &hosts),
    };
    match outcome {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("secure-headers: {message}");
            ExitCode::FAILURE
        }
    }
}
