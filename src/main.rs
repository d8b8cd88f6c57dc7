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
    /// Replay a scripted week of a shop against fakes of Zalo, SMS and team chat (no account
    /// needed) and print it as a timeline.
    Demo {
        /// Keep running afterwards: post your own webhooks, use the admin API.
        #[arg(long)]
        serve: bool,
        /// Port for --serve.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Plain text, no colours.
        #[arg(long)]
        no_color: bool,
    },
    /// One scheduler pass as of an instant, delivering every job due by then; prints what it did.
    Tick {
        /// The instant (RFC 3339, e.g. 2027-03-05T09:00:00+07:00); default: now.
        #[arg(long)]
        at: Option<String>,
    },
    /// Effectiveness per rule, campaign step and A/B variant: sends, failures, receipts,
    /// replies, returns, clicks, handoff deadlines.
    Report {
        /// From this date (2027-03-01, OA time zone) or RFC 3339 instant; default: everything.
        #[arg(long)]
        since: Option<String>,
        /// Only this rule (or campaign, with its steps).
        #[arg(long)]
        rule: Option<String>,
    },
    /// Import or export contacts as CSV.
    Contacts {
        #[command(subcommand)]
        command: zaloflow::contacts::Command,
    },
    /// Agents' accounts for the board: add (password on standard input), list, disable,
    /// enable, revoke (end their sessions), password.
    Agents {
        #[command(subcommand)]
        command: zaloflow::agents::Command,
    },
    /// Rule files: check them, or print their JSON Schema.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// What-if: replay the stored events of a past window (default: the last 28 days) against
    /// draft rules and the running ones, or project the coming days (--ahead 14d); prints
    /// fires, sends, skips, handoffs, template quota and cost per rule and day. Nothing is sent
    /// and the database is only read.
    Forecast {
        /// The draft rules folder.
        #[arg(long)]
        rules: std::path::PathBuf,
        /// From this date (2027-03-01, OA time zone) or RFC 3339 instant.
        #[arg(long)]
        from: Option<String>,
        /// To this date (inclusive) or instant.
        #[arg(long)]
        to: Option<String>,
        /// The coming days instead of a past window (e.g. 14d).
        #[arg(long)]
        ahead: Option<String>,
        /// The scheduler's cadence in the replay (default 10m).
        #[arg(long)]
        every: Option<String>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Dry run: which rules match an event and what they would do; no side effects.
    Simulate {
        /// A Zalo webhook body, or {"event"|"trigger": …, "contact": …} (see rules/README.md).
        event: std::path::PathBuf,
        /// The event's time (RFC 3339); default: the event's own timestamp.
        #[arg(long)]
        at: Option<String>,
        /// The rules folder (default: ZALOFLOW_RULES).
        #[arg(long)]
        rules: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Check every rule file: exit 0, or exit 1 with one `path:line:col: message` per problem;
    /// hygiene warnings (`path:line:col: warning: message`) keep exit 0 unless
    /// --deny-warnings. Ends with a summary line.
    Check {
        /// The rules folder (default: ZALOFLOW_RULES).
        #[arg(long)]
        rules: Option<std::path::PathBuf>,
        /// Exit 1 when there are warnings too.
        #[arg(long)]
        deny_warnings: bool,
        /// Also show what loading these rules would do to the members of running campaigns
        /// in the database of DATABASE_URL (changes nothing).
        #[arg(long)]
        against: bool,
        /// Also replay the last 28 days with these rules beside the running ones
        /// (ZALOFLOW_RULES) and print the short forecast (changes nothing).
        #[arg(long)]
        forecast: bool,
    },
    /// Print the JSON Schema of rule files (for editor completion).
    Schema,
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
    // The demo's timeline is its output: logs stay quiet unless asked for (RUST_LOG).
    if matches!(cli.command, Command::Demo { .. }) && std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "error");
    }
    zaloflow::telemetry::init_logging(cli.log_json || config.log_json);
    // Rule commands need no runtime or database.
    match &cli.command {
        Command::Rules { command } => return rules_command(&config, command),
        Command::Simulate { event, at, rules } => {
            let (out, code) = zaloflow::engine::simulate::command(
                event,
                at.as_deref(),
                rules.as_deref().unwrap_or(&config.rules_dir),
                config.tz,
                config.lang,
            );
            print!("{out}");
            return ExitCode::from(code as u8);
        }
        _ => {}
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let serving = matches!(cli.command, Command::Serve);
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve => {
                let addr = std::net::SocketAddr::from(([0, 0, 0, 0], config.port));
                let listener = tokio::net::TcpListener::bind(addr).await?;
                zaloflow::run(config, listener, zaloflow::shutdown_signal()).await
            }
            Command::Demo {
                serve,
                port,
                no_color,
            } => {
                let mut opts = zaloflow::demo::DemoOptions {
                    serve,
                    port,
                    ..Default::default()
                };
                if no_color {
                    opts.color = false;
                }
                zaloflow::demo::run(opts).await.map(|_| ())
            }
            Command::Migrate => {
                zaloflow::open_store(&config).await?;
                println!("migrations applied");
                Ok(())
            }
            Command::Contacts { command } => zaloflow::contacts::run(&config, command).await,
            Command::Agents { command } => zaloflow::agents::run(&config, command).await,
            Command::Tick { at } => {
                let summary = zaloflow::scheduler::command(&config, at.as_deref()).await?;
                print!("{summary}");
                Ok(())
            }
            Command::Report { since, rule } => {
                let store = zaloflow::open_store(&config).await?;
                let out = zaloflow::report::command(
                    &store,
                    config.tz,
                    config.lang,
                    since.as_deref(),
                    rule.as_deref(),
                )
                .await?;
                print!("{out}");
                Ok(())
            }
            Command::Forecast {
                rules,
                from,
                to,
                ahead,
                every,
                json,
            } => {
                let req = zaloflow::forecast::Request {
                    draft: rules,
                    from,
                    to,
                    ahead,
                    every,
                    json,
                };
                let (out, code) = zaloflow::forecast::command(&config, &req).await;
                print!("{out}");
                if code != 0 {
                    use std::io::Write as _;
                    let _ = std::io::stdout().flush();
                    std::process::exit(code);
                }
                Ok(())
            }
            Command::Rules { .. } | Command::Simulate { .. } => Ok(()), // handled above
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The service's failure goes to its log too (JSON where asked); a command's is
            // said once, plainly, to whoever ran it.
            if serving {
                tracing::error!("{e:#}");
            }
            eprintln!("zaloflow: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `zaloflow rules …`: checks (with `--against` and `--forecast`) and the schema.
fn rules_command(config: &zaloflow::config::Config, command: &RulesCommand) -> ExitCode {
    let (out, ok, note) = match command {
        RulesCommand::Check {
            rules,
            deny_warnings,
            against,
            forecast,
        } => {
            let dir = rules.as_deref().unwrap_or(&config.rules_dir);
            let (mut out, ok, note) = zaloflow::rules::check_command_with(
                dir,
                *deny_warnings,
                &zaloflow::rule_load_options(config),
                config
                    .deployment_found
                    .then(|| config.configured_channels())
                    .as_ref(),
            );
            if *forecast && ok {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                match rt.block_on(zaloflow::forecast::short_command(config, dir)) {
                    Ok(more) => out.push_str(&more),
                    Err(e) => {
                        print!("{out}");
                        eprintln!("zaloflow: rules check --forecast: {e:#}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            if *against && ok {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                match rt.block_on(zaloflow::scheduler::check_against(
                    dir,
                    config.database_url.expose(),
                    config.lang,
                )) {
                    Ok((more, _)) => out.push_str(&more),
                    Err(e) => {
                        print!("{out}");
                        eprintln!("zaloflow: rules check --against: {e:#}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            (out, ok, note)
        }
        RulesCommand::Schema => (
            zaloflow::rules::schema::to_pretty_string(),
            true,
            String::new(),
        ),
    };
    print!("{out}");
    if !note.is_empty() {
        eprintln!("{note}");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
