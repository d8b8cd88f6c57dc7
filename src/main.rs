use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "zaloflow",
    version,
    about = "Customer care automation for a Zalo Official Account"
)]
struct Cli {
    /// Log as JSON lines (also ZALOFLOW_LOG_FORMAT=json).
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server, inbox processor, senders and scheduler until SIGTERM/ctrl-c.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Import or export contacts as CSV.
    Contacts {
        #[command(subcommand)]
        command: zaloflow::contacts::Command,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match zaloflow::config::Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zaloflow: configuration error: {e:#}");
            return ExitCode::from(2);
        }
    };
    zaloflow::telemetry::init_logging(cli.log_json || config.log_json);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve => {
                let addr = std::net::SocketAddr::from(([0, 0, 0, 0], config.port));
                let listener = tokio::net::TcpListener::bind(addr).await?;
                zaloflow::run(config, listener, zaloflow::shutdown_signal()).await
            }
            Command::Migrate => {
                zaloflow::open_store(&config).await?;
                println!("migrations applied");
                Ok(())
            }
            Command::Contacts { command } => zaloflow::contacts::run(&config, command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("zaloflow: {e:#}");
            ExitCode::FAILURE
        }
    }
}
