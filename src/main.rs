//! The `tracejoin` binary: parse arguments, load config, run. No logic of its own.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracejoin::config::Config;
use tracejoin::telemetry::server::{self, Health};

#[derive(Parser)]
#[command(
    name = "tracejoin",
    version,
    about = "Joins application logs with distributed traces while both stream through Kafka"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the processor against Kafka.
    Run {
        /// The config file (YAML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the real pipeline on an embedded Kafka with generated traffic.
    Demo {
        /// How long to generate traffic.
        #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Traces per second.
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        /// Where to serve /metrics.
        #[arg(long, default_value = "127.0.0.1:9464")]
        metrics_addr: std::net::SocketAddr,
    },
    /// Validate a config and show what the extraction rules make of sample lines.
    Check {
        /// The config file (YAML); the built-in defaults when absent.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// A file of sample log lines, one per line.
        #[arg(long)]
        sample: Option<PathBuf>,
        /// Exit with status 1 when any sample line has no trace id (to gate a log format in CI).
        #[arg(long, requires = "sample")]
        require_trace_id: bool,
    },
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn shutdown_signal(token: CancellationToken) {
    let term = async {
        #[cfg(unix)]
        {
            if let Ok(mut s) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                s.recv().await;
                return;
            }
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
    tracing::info!("signal received: draining");
    token.cancel();
}

/// The error and its causes, each once: a cause whose text the message before it already
/// includes is not repeated. No backtrace.
fn cause_chain(e: &anyhow::Error) -> String {
    let mut out = format!("error: {e}");
    let mut last = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !last.contains(&text) {
            out.push_str(&format!("\n  caused by: {text}"));
        }
        last = text;
    }
    out
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", cause_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    match cli.command {
        Command::Run { config } => {
            init_logging("info");
            let config =
                Config::load(&config).with_context(|| format!("loading {}", config.display()))?;
            let shutdown = CancellationToken::new();
            tokio::spawn(shutdown_signal(shutdown.clone()));
            let health = Health::default();
            let auth =
                tracejoin::telemetry::auth::BasicAuth::new(config.metrics.basic_auth_users.clone());
            let tls = match &config.metrics.tls {
                Some(t) => Some(t.server_config("metrics.tls")?),
                None => None,
            };
            let scheme = if tls.is_some() { "https" } else { "http" };
            let addr = server::serve_with(
                config.metrics.listen,
                health.clone(),
                auth,
                tls,
                shutdown.clone(),
            )
            .await
            .with_context(|| format!("binding metrics endpoint {}", config.metrics.listen))?;
            tracing::info!(%addr, scheme, "serving /metrics, /healthz, /readyz");
            tracejoin::pipeline::run(config, health, Default::default(), shutdown)
                .await
                .context("pipeline")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            duration,
            rate,
            metrics_addr,
        } => {
            init_logging("warn");
            let summary = tracejoin::demo::run(tracejoin::demo::DemoOptions {
                duration,
                rate,
                metrics_addr,
            })
            .await?;
            let matched = summary.outcomes[0] + summary.outcomes[1];
            anyhow::ensure!(matched > 0, "the demo joined no logs");
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            config,
            sample,
            require_trace_id,
        } => {
            init_logging("warn");
            let ok = tracejoin::check::run(config.as_deref(), sample.as_deref(), require_trace_id)?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
